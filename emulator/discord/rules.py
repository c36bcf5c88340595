"""Gateway rules as pure functions: opcodes, close codes, identify pacing, sharding and resume windows."""

from __future__ import annotations

from typing import Any

from .world import ADMINISTRATOR

# Opcodes (https://discord.com/developers/docs/topics/opcodes-and-status-codes).
OP_HEARTBEAT = 1
OP_IDENTIFY = 2
OP_PRESENCE_UPDATE = 3
OP_VOICE_STATE_UPDATE = 4
OP_RESUME = 6
OP_RECONNECT = 7
OP_REQUEST_GUILD_MEMBERS = 8
OP_INVALID_SESSION = 9
OP_HELLO = 10
OP_HEARTBEAT_ACK = 11

CLOSE_UNKNOWN_OPCODE = 4001
CLOSE_DECODE_ERROR = 4002
CLOSE_NOT_AUTHENTICATED = 4003
CLOSE_AUTHENTICATION_FAILED = 4004
CLOSE_ALREADY_AUTHENTICATED = 4005
CLOSE_RATE_LIMITED = 4008
CLOSE_SESSION_TIMED_OUT = 4009
CLOSE_INVALID_SHARD = 4010
CLOSE_SHARDING_REQUIRED = 4011
CLOSE_INVALID_API_VERSION = 4012

# After these the session cannot be resumed (Discord: "reconnect and start a new session" or do not
# reconnect at all). 1000/1001 from the client end the session too.
SESSION_ENDING_CLOSES = frozenset({4004, 4007, 4009, 4010, 4011, 4012, 4013, 4014})
CLIENT_SESSION_ENDING_CLOSES = frozenset({1000, 1001})

GATEWAY_VERSION = 10


def identify_bucket(shard_id: int, max_concurrency: int) -> int:
    """Shards identify in rate-limit buckets keyed shard_id % max_concurrency."""
    return shard_id % max_concurrency


def identify_allowed(last_identify: float | None, now: float, interval_s: float) -> bool:
    """One IDENTIFY per bucket per interval (5 s on Discord)."""
    return last_identify is None or now - last_identify >= interval_s


def parse_shard(value: Any) -> tuple[int, int] | None:
    """[shard_id, num_shards] from IDENTIFY, defaulting to [0, 1]; None when malformed."""
    if value is None:
        return 0, 1
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return None
    shard_id, count = value
    if count < 1 or not 0 <= shard_id < count:
        return None
    return shard_id, count


def guild_on_shard(guild_id: str, shard_id: int, shard_count: int) -> bool:
    return (int(guild_id) >> 22) % shard_count == shard_id


def recommended_shards(guild_count: int, guilds_per_shard: int) -> int:
    """What GET /gateway/bot suggests: one shard per `guilds_per_shard` (1,000 on Discord) guilds."""
    return max(1, -(-guild_count // guilds_per_shard))


def resume_replayable(client_seq: int | None, first_buffered_seq: int, last_seq: int) -> bool:
    """A RESUME can be served when every event after the client's seq is still buffered."""
    seq = client_seq or 0
    return first_buffered_seq - 1 <= seq <= last_seq


def heartbeat_timeout_s(heartbeat_interval_ms: int, grace_s: float) -> float:
    """How long the server waits for any payload before treating the connection as a zombie."""
    return heartbeat_interval_ms * 1.5 / 1000 + grace_s


ALL_PERMISSIONS = (1 << 53) - 1


def member_permissions(owner_id: str, user_id: str, role_permissions: list[int], everyone: int) -> int:
    """A member's guild-level permissions as Discord computes them for an interaction: the owner has all,
    otherwise @everyone's bits plus every role's, and ADMINISTRATOR implies all."""
    if user_id == owner_id:
        return ALL_PERMISSIONS
    bits = everyone
    for permissions in role_permissions:
        bits |= permissions
    return ALL_PERMISSIONS if bits & ADMINISTRATOR else bits
