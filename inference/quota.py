"""AI calls counted against the tier's monthly limit, per owner, in Redis (atomic, in one script; the
configuration API persists the counts into PostgreSQL's usage_counters), and owner notices sent at most once
per owner, kind and month."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from redis.asyncio import Redis

from models.tiers import TIERS, Tier

# Counters outlive their month long enough for the control plane to read the final figure.
COUNTER_TTL_S = 40 * 24 * 3600

# Lua: count one call on KEYS[n] unless that passes the limit ARGV[n] (-1: none). Shared with the ledger's
# claim, which charges in the same round trip. Returns 1 when counted, 0 when over the limit.
CHARGE_LUA = f"""
local function charge(key, limit)
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('EXPIRE', key, {COUNTER_TTL_S}) end
  if limit >= 0 and count > limit then
    redis.call('DECR', key)
    return 0
  end
  return 1
end
"""


def month_of(at: datetime) -> str:
    return f"{at.year:04d}-{at.month:02d}"


@dataclass(frozen=True)
class Charge:
    """One AI call to count: the owner's counter for the month and the tier's limit (None: unlimited)."""

    key: str
    limit: int | None

    @property
    def limit_arg(self) -> int:
        return -1 if self.limit is None else self.limit


class MonthlyUsage:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._charge = redis.register_script(CHARGE_LUA + "return charge(KEYS[1], tonumber(ARGV[1]))")

    def counter_key(self, owner_id: UUID, month: str) -> str:
        return f"{self.prefix}calls:{owner_id}:{month}"

    def charge_for(self, owner_id: UUID, tier: Tier, at: datetime) -> Charge:
        return Charge(self.counter_key(owner_id, month_of(at)), TIERS[tier].monthly_ai_calls)

    async def charge(self, charge: Charge) -> bool:
        """Count the call; False (and not counted) when the limit is already reached."""
        return bool(await self._charge(keys=[charge.key], args=[charge.limit_arg]))

    async def refund(self, charge: Charge) -> None:
        """Take back a counted call that produced no completion."""
        await self.redis.decr(charge.key)

    async def calls(self, owner_id: UUID, at: datetime) -> int:
        raw = await self.redis.get(self.counter_key(owner_id, month_of(at)))
        return int(raw or 0)

    async def month_counts(self, month: str) -> dict[UUID, int]:
        """Every owner's count of `month` (what the control plane persists)."""
        pattern = self.counter_key(UUID(int=0), month).replace(str(UUID(int=0)), "*")
        keys = [key async for key in self.redis.scan_iter(match=pattern, count=1000)]
        counts: dict[UUID, int] = {}
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            for key, raw in zip(chunk, await self.redis.mget(chunk), strict=True):
                if raw is not None:
                    counts[UUID(key.decode().rsplit(":", 2)[1])] = int(raw)
        return counts

    async def first_notice(self, owner_id: UUID, kind: str, at: datetime) -> bool:
        """True the first time this month that the owner is to be told about `kind`."""
        key = f"{self.prefix}notified:{kind}:{owner_id}:{month_of(at)}"
        return bool(await self.redis.set(key, b"1", nx=True, ex=COUNTER_TTL_S))
