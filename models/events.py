"""What gateways write to `discord.events`: one envelope per Discord dispatch, the raw data inside (its
personal fields sealed)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from models.common import Payload, ShortText, Snowflake, Strict, utc_now

# Marks a partition key that names a bot (its DMs) rather than a guild.
DM_PREFIX = "dm:"


def partition_key(guild_id: str | None, bot_id: str) -> str:
    """The key of everything that belongs to one guild's state.

    Guild events are keyed by guild so they stay in order on one partition. DMs have no guild: they
    are keyed by the bot, because the DM policy the processors need is configuration of the bot's
    deployments, published under the same key (see docs/ARCHITECTURE.md).
    """
    return guild_id if guild_id is not None else f"{DM_PREFIX}{bot_id}"


class SealedData(Strict):
    """Personal fields of an event, AES-256-GCM encrypted under one user's data key (streams/sealing.py).
    The key id is random, so it names no one; destroying the key (erasure) leaves every copy unreadable."""

    key_id: str = Field(min_length=1, max_length=64)
    nonce: str = Field(min_length=1, max_length=32)  # base64
    ciphertext: str = Field(min_length=1)  # base64
    # The one field a part about another user holds (the message replied to, ...); None: the subject's part.
    field: str | None = Field(default=None, max_length=64)


class EventEnvelope(Payload):
    event_id: str = Field(min_length=1, max_length=200)
    bot_id: Snowflake
    shard_id: int = Field(default=0, ge=0)
    guild_id: Snowflake | None = None
    channel_id: Snowflake | None = None
    type: str = Field(min_length=1, max_length=64, pattern=r"^[A-Z_]+$")
    # The gateway's sequence number; 0 when the dispatch carried none (such a one is never replayed).
    sequence: int = Field(ge=0)
    received_at: datetime = Field(default_factory=utc_now)
    # The dispatch without its personal fields while `sealed` holds them; the whole dispatch otherwise.
    data: dict[str, Any]
    # The personal fields of the user the event is about, under their key.
    sealed: SealedData | None = None
    # Fields about other users (the message a reply quotes, the author of a message reacted to), each under
    # that user's key, so erasing them erases these copies too.
    sealed_references: list[SealedData] = Field(default_factory=list)

    @property
    def key(self) -> str:
        return partition_key(self.guild_id, self.bot_id)


# The edge's own event, not a Discord dispatch: a track (or a spoken reply) ended on a bot's voice connection.
# It travels in `discord.events` under the guild's key, so the music queue sees it in order with the commands.
VOICE_TRACK_END = "DEEP_VOICE_TRACK_END"


class VoiceTrackEnd(Payload):
    """The data of a VOICE_TRACK_END envelope."""

    guild_id: Snowflake
    channel_id: Snowflake
    track: ShortText
    # finished: played to the end; skipped/stopped: cut by a command; failed: the source could not be played.
    reason: Literal["finished", "skipped", "stopped", "failed"]
