"""Which actions were performed: the record that makes a redelivered action a no-op.

An action id goes "started" before the runner touches Discord and "done" after; the consumer commits the
offset only after that. A redelivery that finds "done" is skipped. One that finds "started" means the last
attempt died mid-way: it is performed again, which is safe because message creation carries a nonce Discord
enforces and every other action is idempotent on Discord's side.
"""

from __future__ import annotations

from enum import Enum

import redis.asyncio as aioredis

STARTED = b"started"
DONE = b"done"
# Longer than discord.actions' retention (1 day): any redelivery the broker can still make finds the record.
DEFAULT_TTL_S = 26 * 3600


class Claim(Enum):
    FIRST = "first"
    RETRY = "retry"
    DONE = "done"


class ActionLedger:
    def __init__(self, redis: aioredis.Redis, prefix: str, ttl_s: int = DEFAULT_TTL_S) -> None:
        self._redis = redis
        self._prefix = f"{prefix}gw:action:"
        self._ttl_s = ttl_s

    def _key(self, action_id: str) -> str:
        return self._prefix + action_id

    async def claim(self, action_id: str) -> Claim:
        key = self._key(action_id)
        if await self._redis.set(key, STARTED, nx=True, ex=self._ttl_s):
            return Claim.FIRST
        state = await self._redis.get(key)
        if state == DONE:
            return Claim.DONE
        if state is None:  # expired between the two calls
            return await self.claim(action_id)
        return Claim.RETRY

    async def finish(self, action_id: str) -> None:
        await self._redis.set(self._key(action_id), DONE, ex=self._ttl_s)
