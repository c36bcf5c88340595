"""Per-API-key rate limiting in Redis: a fixed window counter per key, shared by every API replica."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from redis.asyncio import Redis


@dataclass(frozen=True)
class RateLimit:
    requests: int = 120
    window_s: int = 60


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    # Seconds until the window resets; what a 429 sends as Retry-After.
    reset_s: int


class RateLimiter:
    def __init__(self, redis: Redis, limit: RateLimit, prefix: str = "deep:api:ratelimit:") -> None:
        self._redis = redis
        self.limit = limit
        self._prefix = prefix

    async def hit(self, subject: str, now: float | None = None) -> RateDecision:
        now = time.time() if now is None else now
        window = int(now // self.limit.window_s)
        key = f"{self._prefix}{subject}:{window}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, self.limit.window_s + 1)
            count, _ = await pipe.execute()
        reset_s = max(1, math.ceil((window + 1) * self.limit.window_s - now))
        return RateDecision(
            allowed=count <= self.limit.requests,
            limit=self.limit.requests,
            remaining=max(0, self.limit.requests - count),
            reset_s=reset_s,
        )
