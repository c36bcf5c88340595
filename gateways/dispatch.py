"""From a gateway dispatch to the envelope on `discord.events`."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import datetime
from typing import Any

from models.events import VOICE_TRACK_END, VOICE_TRANSCRIPT, EventEnvelope, VoiceTrackEnd, VoiceTranscript
from streams.sealing import SealedDispatch

_SNOWFLAKE = re.compile(r"^[0-9]{1,20}$")
# Dispatches whose own `id` is the guild's or the channel's.
_GUILD_OBJECT_EVENTS = frozenset({"GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE"})
_CHANNEL_OBJECT_EVENTS = frozenset(
    {"CHANNEL_CREATE", "CHANNEL_UPDATE", "CHANNEL_DELETE", "THREAD_CREATE", "THREAD_UPDATE", "THREAD_DELETE"}
)


def _snowflake(value: Any) -> str | None:
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else None
    return text if text is not None and _SNOWFLAKE.match(text) else None


def dispatch_ids(event_type: str, data: dict[str, Any]) -> tuple[str | None, str | None]:
    """(guild id, channel id) of a dispatch, None where it has none."""
    guild_id = _snowflake(data.get("id") if event_type in _GUILD_OBJECT_EVENTS else data.get("guild_id"))
    channel_id = _snowflake(
        data.get("id") if event_type in _CHANNEL_OBJECT_EVENTS else data.get("channel_id")
    )
    return guild_id, channel_id


def new_generation() -> str:
    """What tells one IDENTIFY's dispatches from another's: a server may reuse a session id or number
    afresh, so neither the session id nor the sequence alone names a dispatch."""
    return secrets.token_hex(8)


def event_id(bot_id: str, generation: str, seq: int | None) -> str:
    """Stable across a RESUME's replay (the generation is kept with the session), so consumers can drop
    repeats. A dispatch without a sequence can never be replayed and gets an id of its own."""
    return f"{bot_id}:{generation}:{seq if seq is not None else 'u' + secrets.token_hex(8)}"


def envelope(
    event_id: str,
    bot_id: str,
    shard_id: int,
    seq: int | None,
    event_type: str,
    data: dict[str, Any],
    received_at: datetime,
    sealed: SealedDispatch | None = None,
) -> EventEnvelope:
    """The dispatch's envelope, built once with its personal fields already sealed (`sealed`; None: the
    dispatch is about no one person and travels whole)."""
    guild_id, channel_id = dispatch_ids(event_type, data)
    return EventEnvelope(
        event_id=event_id,
        bot_id=bot_id,
        shard_id=shard_id,
        guild_id=guild_id,
        channel_id=channel_id,
        type=event_type,
        sequence=seq if seq is not None else 0,
        received_at=received_at,
        data=data if sealed is None else sealed.clear,
        sealed=None if sealed is None else sealed.sealed,
        sealed_references=[] if sealed is None else sealed.references,
    )


def interaction_envelope(bot_id: str, interaction: dict[str, Any], received_at: datetime) -> EventEnvelope:
    """An interaction that came over HTTP (the Interactions Endpoint URL), as the gateway would have put it.
    The interaction's id names the event, so a repeated request is the same event and never acts twice."""
    guild_id, channel_id = dispatch_ids("INTERACTION_CREATE", interaction)
    return EventEnvelope(
        event_id=f"{bot_id}:interaction:{interaction['id']}",
        bot_id=bot_id,
        # No shard carried it; Discord routes a guild's events by guild, and the platform keys them so.
        shard_id=0,
        guild_id=guild_id,
        channel_id=channel_id,
        type="INTERACTION_CREATE",
        sequence=0,
        received_at=received_at,
        data=interaction,
    )


def transcript_envelope(bot_id: str, transcript: VoiceTranscript, received_at: datetime) -> EventEnvelope:
    """The edge's own VOICE_TRANSCRIPT, under the guild's key; published unsealed, the runner seals its
    personal fields (user_id, content) under the speaker's key as it does a message's."""
    event_id = f"{bot_id}:voice-transcript:{uuid.uuid4().hex}"
    return _voice_envelope(bot_id, event_id, VOICE_TRANSCRIPT, transcript, received_at)


def track_end_envelope(
    bot_id: str, track_end: VoiceTrackEnd, play_id: str, received_at: datetime
) -> EventEnvelope:
    """The edge's own VOICE_TRACK_END, under the guild's key like the commands that started the track. Named
    by the action that started it: a track ends once, whichever runner saw the end."""
    # Hashed: an action id may be as long as an event id may be.
    event_id = f"{bot_id}:voice-end:{hashlib.blake2b(play_id.encode(), digest_size=16).hexdigest()}"
    return _voice_envelope(bot_id, event_id, VOICE_TRACK_END, track_end, received_at)


def _voice_envelope(
    bot_id: str, event_id: str, event_type: str, data: VoiceTrackEnd | VoiceTranscript, received_at: datetime
) -> EventEnvelope:
    return EventEnvelope(
        event_id=event_id,
        bot_id=bot_id,
        guild_id=data.guild_id,
        channel_id=data.channel_id,
        type=event_type,
        sequence=0,
        received_at=received_at,
        data=data.model_dump(mode="json"),
    )
