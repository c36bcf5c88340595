"""AI-call usage per owner and month: persisted from the inference workers' live counters, read against
the tier's limits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import asyncpg

from api.schemas import Usage
from models.tiers import TIERS, Tier


def current_period(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m")


@dataclass(frozen=True)
class UsageCounters:
    pool: asyncpg.Pool

    async def of_owner(self, owner_id: UUID, tier: Tier, live_ai_calls: int) -> Usage:
        """`live_ai_calls`: the inference workers' count this month (Redis), ahead of the persisted one."""
        period = current_period()
        ai_calls = await self.pool.fetchval(
            "SELECT ai_calls FROM usage_counters WHERE owner_id = $1 AND period = $2", owner_id, period
        )
        agents = await self.pool.fetchval(
            "SELECT count(*) FROM agent_configurations WHERE owner_id = $1", owner_id
        )
        limits = TIERS[tier]
        return Usage(
            period=period,
            ai_calls=max(ai_calls or 0, live_ai_calls),
            monthly_ai_calls=limits.monthly_ai_calls,
            agents=agents,
            agent_slots=limits.agent_slots,
        )

    async def record(self, period: str, counts: dict[UUID, int]) -> None:
        """Persist AI-call counts of `period`; a count never goes down (a late, lower reading is ignored).
        Owners deleted meanwhile are skipped."""
        await self.pool.execute(
            """INSERT INTO usage_counters (owner_id, period, ai_calls)
               SELECT c.owner_id, $1, c.ai_calls
               FROM unnest($2::uuid[], $3::bigint[]) AS c (owner_id, ai_calls)
               JOIN owners o ON o.owner_id = c.owner_id
               ON CONFLICT (owner_id, period)
               DO UPDATE SET ai_calls = GREATEST(usage_counters.ai_calls, EXCLUDED.ai_calls)""",
            period,
            list(counts),
            list(counts.values()),
        )
