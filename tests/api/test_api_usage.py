"""Usage: the AI calls the inference workers count in Redis show at once, and are persisted for billing."""

from __future__ import annotations

from uuid import UUID

import asyncpg
import pytest
from redis.asyncio import Redis

from api.app import create_app
from api.background import persist_usage
from api.ratelimit import RateLimit
from api.store import current_period
from models.common import utc_now
from models.tiers import Tier
from settings import Settings
from tests.api.conftest import NewOwner, Recorder, started

pytestmark = pytest.mark.stack


async def test_ai_calls_counted_by_the_workers_show_in_usage_and_survive_in_postgres(
    api_settings: Settings, pg_dsn: str, pool: asyncpg.Pool, recorder: Recorder, new_owner: NewOwner
) -> None:
    app = create_app(api_settings, postgres_dsn=pg_dsn, background=False, rate_limit=RateLimit(100_000, 60))
    async for client in started(app, recorder):
        owner = await new_owner(Tier.pro)
        owner_id = UUID((await client.get("/me", headers=owner)).json()["owner"]["owner_id"])
        # What an inference worker does for each model call (the same counter class, the same keys).
        counters = app.state.ctx.usage
        charge = counters.charge_for(owner_id, Tier.pro, utc_now())
        try:
            assert await counters.charge(charge) and await counters.charge(charge)
            usage = (await client.get("/usage", headers=owner)).json()
            assert usage["ai_calls"] == 2 and usage["monthly_ai_calls"] == 10_000

            assert await persist_usage(app.state.ctx.store, counters) >= 1
            persisted = await pool.fetchval(
                "SELECT ai_calls FROM usage_counters WHERE owner_id = $1 AND period = $2",
                owner_id,
                current_period(),
            )
            assert persisted == 2

            # Redis loses the counter (expiry, a flush): the persisted count still answers, and a later,
            # lower reading does not lower it.
            redis: Redis = Redis.from_url(api_settings.redis_url)
            await redis.delete(charge.key)
            assert (await client.get("/usage", headers=owner)).json()["ai_calls"] == 2
            assert await counters.charge(charge)
            await persist_usage(app.state.ctx.store, counters)
            assert (await client.get("/me", headers=owner)).json()["usage"]["ai_calls"] == 2
            await redis.aclose()
        finally:
            await counters.redis.delete(charge.key)
