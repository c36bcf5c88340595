"""The request ledger: each request id is answered once, so a redelivered request is neither called nor
charged again.

A worker claims a request id (SET NX with a lease) before it works on it and replaces the claim with the
encoded result when done. A redelivery finds the result and publishes it again (consumers dedupe on ids
derived from the request id); one that finds a live claim waits for the result, or for the lease to run out
when the claimant died. The claim can count the AI call in the same round trip (the common path); the
request key and the counter key are then used by one script, so on Redis Cluster they need a hash tag.
Claims and answers go through a RedisBatcher, so those of requests close in time share a round trip. A claim
names its script by digest (EVALSHA): the script's text is sent again only when the server lost it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from inference.batching import RedisBatcher
from inference.quota import CHARGE_LUA, Charge

PENDING = b"pending"
# KEYS[1] the request, KEYS[2] the counter to charge (optional); ARGV: pending marker, lease, limit.
# Returns {1, charged (1/0, or -1 when no counter)} when claimed, else {0, the stored value}.
_CLAIM_LUA = (
    CHARGE_LUA
    + """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  if #KEYS == 1 then return {1, -1} end
  return {1, charge(KEYS[2], tonumber(ARGV[3]))}
end
return {0, redis.call('GET', KEYS[1])}
"""
)
_CLAIM_SHA = hashlib.sha1(_CLAIM_LUA.encode()).hexdigest()
# Delete the key only while it still holds a claim (never a stored result).
_RELEASE_LUA = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


@dataclass(frozen=True)
class Claim:
    # True: this worker owns the request now.
    owned: bool
    # The stored result of an earlier answer, if any.
    result: bytes | None = None
    # With a charge: whether the call was counted (False: over the limit). None: nothing was charged.
    charged: bool | None = None


class RequestLedger:
    def __init__(self, redis: Redis, prefix: str, lease_s: int, result_ttl_s: int) -> None:
        self.redis = redis
        self.prefix = f"{prefix}request:"
        self.lease_s = lease_s
        self.result_ttl_s = result_ttl_s
        self.batcher = RedisBatcher(redis)
        self._release = redis.register_script(_RELEASE_LUA)

    async def claim(self, request_id: str, charge: Charge | None = None) -> Claim:
        keys = [self.prefix + request_id] + ([charge.key] if charge is not None else [])
        limit = charge.limit_arg if charge is not None else -1
        arguments = (len(keys), *keys, PENDING, self.lease_s, limit)
        try:
            owned, value = await self.batcher.execute("EVALSHA", _CLAIM_SHA, *arguments)
        except NoScriptError:
            # The server lost its scripts (a restart, SCRIPT FLUSH): EVAL runs the text and caches it again.
            owned, value = await self.batcher.execute("EVAL", _CLAIM_LUA, *arguments)
        if owned:
            return Claim(owned=True, charged=None if value == -1 else bool(value))
        stored = value if isinstance(value, bytes) else str(value).encode()
        return Claim(owned=False, result=None if stored == PENDING else stored)

    async def answer(self, request_id: str, result: bytes) -> None:
        await self.batcher.execute("SET", self.prefix + request_id, result, "EX", self.result_ttl_s)

    async def release(self, request_id: str) -> None:
        """Give up a claim without an answer (shutdown), so a redelivery need not wait out the lease."""
        await self._release(keys=[self.prefix + request_id], args=[PENDING])
