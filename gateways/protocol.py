"""Discord gateway v10, the parts a lean shard needs: opcodes, intents, payloads and what a close code means.

Everything here is pure; gateways/shard.py does the I/O.
"""

from __future__ import annotations

from enum import Enum, IntEnum
from typing import Any

import discord

GATEWAY_QUERY = "v=10&encoding=json"


class Op(IntEnum):
    DISPATCH = 0
    HEARTBEAT = 1
    IDENTIFY = 2
    PRESENCE_UPDATE = 3
    VOICE_STATE_UPDATE = 4
    RESUME = 6
    RECONNECT = 7
    INVALID_SESSION = 9
    HELLO = 10
    HEARTBEAT_ACK = 11


# What the platform reads: guilds and channels, messages with their content, members, reactions, DMs and
# voice states, scheduled events. MESSAGE_CONTENT and GUILD_MEMBERS are privileged.
DEFAULT_INTENTS = (
    "guilds",
    "guild_messages",
    "message_content",
    "members",
    "guild_reactions",
    "dm_messages",
    "voice_states",
    "guild_scheduled_events",
)


MESSAGE_CONTENT = 1 << 15
# Privileged intents and the application flags saying Discord granted them (the full flag for verified bots,
# the LIMITED one for bots in fewer than 100 guilds with the intent switched on in the developer portal).
PRIVILEGED_INTENT_FLAGS: dict[int, tuple[int, int]] = {
    1 << 1: (1 << 14, 1 << 15),  # GUILD_MEMBERS: GATEWAY_GUILD_MEMBERS(_LIMITED)
    1 << 8: (1 << 12, 1 << 13),  # GUILD_PRESENCES: GATEWAY_PRESENCE(_LIMITED)
    MESSAGE_CONTENT: (1 << 18, 1 << 19),  # GATEWAY_MESSAGE_CONTENT(_LIMITED)
}
PRIVILEGED_INTENTS = sum(PRIVILEGED_INTENT_FLAGS)


def granted_intents(wanted: int, application_flags: int) -> int:
    """`wanted` without the privileged intents the application's flags do not grant: an IDENTIFY asking for
    one of those is closed with 4014."""
    refused = sum(
        intent
        for intent, flags in PRIVILEGED_INTENT_FLAGS.items()
        if not any(application_flags & flag for flag in flags)
    )
    return wanted & ~refused


def intents_value(names: tuple[str, ...] | list[str]) -> int:
    """The IDENTIFY intents bit field for discord.py's intent names (e.g. "guild_messages")."""
    unknown = [name for name in names if name not in discord.Intents.VALID_FLAGS]
    if unknown:
        known = ", ".join(sorted(discord.Intents.VALID_FLAGS))
        raise ValueError(f"intents: unknown intent {', '.join(unknown)}; known: {known}")
    return discord.Intents(**dict.fromkeys(names, True)).value


class Reconnect(Enum):
    """What a shard does after its connection closed."""

    RESUME = "resume"
    # The session is gone (Discord forgot it or our sequence is wrong): IDENTIFY again.
    IDENTIFY = "identify"
    # 4004: the token is dead. Stop every use of it.
    TOKEN_DEAD = "token_dead"
    # 4014: a privileged intent the application was not granted; identify again without it.
    DISALLOWED_INTENTS = "disallowed_intents"
    # 4011: the bot is in too many guilds for its shard count; shard afresh with Discord's count.
    SHARDING_REQUIRED = "sharding_required"
    # A configuration error no retry can fix (invalid shard, version or intents).
    FATAL = "fatal"


CLOSE_AUTHENTICATION_FAILED = 4004
CLOSE_INVALID_SEQ = 4007
CLOSE_SESSION_TIMED_OUT = 4009
CLOSE_SHARDING_REQUIRED = 4011
CLOSE_DISALLOWED_INTENTS = 4014
CLOSE_FATAL = frozenset({4010, 4012, 4013})
# A close code of ours that keeps the session resumable: Discord ends a session only on 1000 and 1001.
CLOSE_KEEP_SESSION = 4000


def after_close(code: int | None) -> Reconnect:
    if code == CLOSE_AUTHENTICATION_FAILED:
        return Reconnect.TOKEN_DEAD
    if code == CLOSE_DISALLOWED_INTENTS:
        return Reconnect.DISALLOWED_INTENTS
    if code == CLOSE_SHARDING_REQUIRED:
        return Reconnect.SHARDING_REQUIRED
    if code in CLOSE_FATAL:
        return Reconnect.FATAL
    if code in (CLOSE_INVALID_SEQ, CLOSE_SESSION_TIMED_OUT):
        return Reconnect.IDENTIFY
    return Reconnect.RESUME


def backoff_delay(failures: int, jitter: float) -> float:
    """Seconds to wait before reconnect attempt number `failures` (1-based); jitter in [0, 1) spreads
    thousands of shards that lost their connections at the same moment."""
    if failures <= 0:
        return 0.0
    ceiling = min(60.0, 2.0 ** (failures - 1))
    return ceiling * (0.5 + jitter / 2)


def gateway_url(base: str) -> str:
    return f"{base.rstrip('/')}/?{GATEWAY_QUERY}"


def identify_payload(token: str, intents: int, shard_id: int, shard_count: int) -> dict[str, Any]:
    return {
        "op": Op.IDENTIFY,
        "d": {
            "token": token,
            "intents": intents,
            "properties": {"os": "linux", "browser": "deep-gateway", "device": "deep-gateway"},
            "shard": [shard_id, shard_count],
            # Member lists are not cached here: don't make Discord send them.
            "large_threshold": 50,
        },
    }


def resume_payload(token: str, session_id: str, seq: int) -> dict[str, Any]:
    return {"op": Op.RESUME, "d": {"token": token, "session_id": session_id, "seq": seq}}


def heartbeat_payload(seq: int | None) -> dict[str, Any]:
    return {"op": Op.HEARTBEAT, "d": seq}


def presence_payload(status: str, activity: str) -> dict[str, Any]:
    # A custom status (activity type 4) shows the text itself, without "Playing".
    activities = [{"name": "Custom Status", "type": 4, "state": activity}] if activity else []
    return {
        "op": Op.PRESENCE_UPDATE,
        "d": {"since": None, "activities": activities, "status": status, "afk": False},
    }


def voice_state_payload(guild_id: str, channel_id: str | None) -> dict[str, Any]:
    return {
        "op": Op.VOICE_STATE_UPDATE,
        "d": {"guild_id": guild_id, "channel_id": channel_id, "self_mute": False, "self_deaf": False},
    }
