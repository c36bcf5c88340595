"""Snowflake ids and bot tokens in Discord's formats."""

from __future__ import annotations

import base64
import secrets

from settings.clock import Clock, wall_clock

DISCORD_EPOCH_MS = 1_420_070_400_000
_INCREMENT_BITS = 12
_INCREMENT_MASK = (1 << _INCREMENT_BITS) - 1


def make_snowflake(unix_ms: int, worker: int, increment: int) -> int:
    """Discord's layout: 42 bits of ms since 2015, 5 worker + 5 process bits, 12 bits increment."""
    return (
        ((unix_ms - DISCORD_EPOCH_MS) << 22)
        | ((worker & 0x3FF) << _INCREMENT_BITS)
        | (increment & _INCREMENT_MASK)
    )


def snowflake_unix_ms(snowflake: int | str) -> int:
    return (int(snowflake) >> 22) + DISCORD_EPOCH_MS


def shard_for_guild(guild_id: int | str, shard_count: int) -> int:
    """The shard a guild's events go to: (guild_id >> 22) % num_shards."""
    return (int(guild_id) >> 22) % shard_count


class SnowflakeGenerator:
    """Strictly increasing snowflakes, so ids sort in creation order as on Discord."""

    __slots__ = ("_clock", "_increment", "_last_ms", "_worker")

    def __init__(self, worker: int = 1, clock: Clock = wall_clock) -> None:
        self._last_ms = 0
        self._increment = 0
        self._worker = worker
        self._clock = clock

    def next_int(self, unix_ms: int | None = None) -> int:
        now = int(self._clock().timestamp() * 1000) if unix_ms is None else unix_ms
        if now <= self._last_ms:
            self._increment += 1
            if self._increment > _INCREMENT_MASK:
                # More than 4096 ids in one ms: borrow the next ms rather than repeat an id.
                self._last_ms += 1
                self._increment = 0
            now = self._last_ms
        else:
            self._last_ms = now
            self._increment = 0
        return make_snowflake(now, self._worker, self._increment)

    def next(self, unix_ms: int | None = None) -> str:
        return str(self.next_int(unix_ms))


def make_token(user_id: str) -> str:
    """A token shaped like Discord's: base64(user id).random.random, so code that reads the id works."""
    head = base64.urlsafe_b64encode(user_id.encode()).decode().rstrip("=")
    return f"{head}.{secrets.token_urlsafe(5)[:6]}.{secrets.token_urlsafe(28)[:38]}"
