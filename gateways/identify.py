"""IDENTIFY limits shared by every runner: max_concurrency per 5 s, and the daily session-start budget.

Discord allows max_concurrency identifies per 5 seconds per token, started bucket by bucket
(shard_id % max_concurrency), and 1,000 per day; going over the daily budget makes Discord reset the token.
The 5-second buckets live in Redis so two runners that both pick up a bot (a rebalance) still take turns.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field

IDENTIFY_INTERVAL_S = 5.0
# Discord counts the interval between IDENTIFYs as it receives them; the bucket is held this much longer
# after ours went out, so a slow delivery of one and a fast one of the next still arrive 5 s apart.
DELIVERY_MARGIN_S = 1.0


class SessionStartLimit(BaseModel):
    """GET /gateway/bot's session_start_limit."""

    model_config = ConfigDict(extra="ignore")

    total: int = Field(ge=0)
    remaining: int = Field(ge=0)
    reset_after: int = Field(ge=0, description="milliseconds until `remaining` is refilled")
    max_concurrency: int = Field(ge=1)


class GatewayBot(BaseModel):
    """GET /gateway/bot: the shard count Discord recommends and the identify limits."""

    model_config = ConfigDict(extra="ignore")

    shards: int = Field(ge=1)
    session_start_limit: SessionStartLimit


def budget_wait_s(limit: SessionStartLimit) -> float:
    """How long to wait before this token may start a session: until the daily budget refills when spent."""
    return 0.0 if limit.remaining > 0 else limit.reset_after / 1000


class IdentifyLimiter:
    def __init__(self, redis: aioredis.Redis, prefix: str, interval_s: float = IDENTIFY_INTERVAL_S) -> None:
        self._redis = redis
        self._prefix = f"{prefix}gw:identify:"
        self._interval_ms = int(interval_s * 1000)
        self._after_sent_ms = int((interval_s + DELIVERY_MARGIN_S) * 1000)

    async def acquire(self, bot_id: str, shard_id: int, max_concurrency: int) -> str:
        """Wait for this shard's bucket; holding it for the interval is the permission to identify. Returns
        the bucket, for `sent`."""
        key = f"{self._prefix}{bot_id}:{shard_id % max_concurrency}"
        while not await self._redis.set(key, b"1", nx=True, px=self._interval_ms):
            remaining_ms = await self._redis.pttl(key)
            await asyncio.sleep(max(remaining_ms, 20) / 1000)
        return key

    async def sent(self, bucket: str) -> None:
        """The IDENTIFY went out: Discord counts the interval from it, not from the bucket's acquisition
        (the connection's handshake came in between), so the bucket is held a full interval (and the
        delivery margin) from now."""
        await self._redis.set(bucket, b"1", px=self._after_sent_ms)
