"""The configuration API: the only writer of configuration. `create_app(settings)` builds it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from redis.asyncio import Redis
from weaviate.exceptions import WeaviateBaseError

from api.analytics import AnalyticsClient
from api.background import (
    consume_owner_notifications,
    consume_token_health,
    run_health_checks,
    run_usage_persistence,
)
from api.characters import MAX_IMPORT_BYTES
from api.console import STATIC_DIR as CONSOLE_DIR
from api.db import create_pool
from api.deps import ApiContext
from api.errors import BodyLimit, install_error_handlers
from api.ratelimit import RateLimit, RateLimiter
from api.routes import (
    agents,
    analytics,
    auth,
    billing,
    deployments,
    gallery,
    memories,
    meta,
    owners,
    presets,
    sandbox,
    tokens,
    traits,
    users,
)
from api.schemas import ErrorBody
from api.store import Store
from api.stripe_billing import StripeBilling
from inference.config import InferenceConfig, inference_config
from inference.pool import EndpointPool
from inference.quota import MonthlyUsage
from infra.migrate import migrate
from memory.store import MemoryStore
from memory.store import connect as connect_memory
from ops.erasure import ErasureRunner, erasure_stores
from ops.exports import ExportRunner
from settings import Settings, get_settings
from streams.outbox import run_relay
from vault.store import TokenVault

DESCRIPTION = """
Owners create agents (configurations), import and export characters, deploy agents into guilds
through their bot tokens, and operators manage owners and tiers. Every change reaches the stream
processors through `agent.deployments` within a second.

Authenticate with `Authorization: Bearer <API key>`, or sign in to the owner console with Discord
(`GET /auth/discord/login`): its `deep_session` cookie authenticates the same routes, and requests that
change something must then send `X-Deep-Console: 1`. Errors have one shape: `detail` says what is
wrong and `errors` names each field at fault by its dotted path.
"""


def create_app(
    settings: Settings | None = None,
    *,
    postgres_dsn: str | None = None,
    background: bool = True,
    rate_limit: RateLimit | None = None,
) -> FastAPI:
    """The app. `background` runs the outbox relay, token health checks and the tokens.health consumer
    in this process; `postgres_dsn` overrides the settings' (tests use a schema of their own)."""
    settings = settings or get_settings()
    dsn = postgres_dsn or settings.postgres_dsn

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await migrate(dsn)
        pool = await create_pool(dsn)
        redis = Redis.from_url(settings.redis_url)
        http = httpx.AsyncClient(timeout=10.0)
        vault = TokenVault.from_settings(pool, settings, http)
        store = Store(pool, vault, settings.topic_namespace)
        usage = MonthlyUsage(redis, InferenceConfig.key_prefix)
        limiter = RateLimiter(redis, rate_limit or RateLimit())
        memories = MemoryStore(connect_memory(settings))
        with contextlib.suppress(WeaviateBaseError):
            # Unavailable now: the memory routes connect on first use (api.deps.memories).
            await memories.client.connect()
            await memories.ensure_collection()
        analytics_client = AnalyticsClient(settings.kafka_bootstrap, settings.topic_namespace)
        stripe_billing = StripeBilling(settings)
        # The endpoints the inference workers use, as they read them from the settings.
        endpoints = inference_config(settings, settings.inference_endpoints, settings.inference_api_key)
        inference = EndpointPool(list(endpoints.endpoints), endpoints)
        data_stores = erasure_stores(settings, dsn, pool, redis, memories)
        erasures = ErasureRunner(data_stores)
        exports = ExportRunner(data_stores)
        app.state.ctx = ApiContext(
            settings,
            store,
            vault,
            limiter,
            usage,
            memories,
            http,
            analytics_client,
            stripe_billing,
            inference,
            erasures,
            exports,
        )
        stop = asyncio.Event()
        tasks = []
        if background:
            tasks = [
                asyncio.create_task(run_relay(dsn, settings.kafka_bootstrap, stop=stop), name="outbox-relay"),
                asyncio.create_task(run_health_checks(vault, stop), name="token-health-checks"),
                asyncio.create_task(
                    consume_token_health(store, data_stores.user_keys, settings.kafka_bootstrap, stop),
                    name="token-health-consumer",
                ),
                asyncio.create_task(
                    consume_owner_notifications(store, data_stores.user_keys, settings.kafka_bootstrap, stop),
                    name="owner-notifications-consumer",
                ),
                asyncio.create_task(run_usage_persistence(store, usage, stop), name="usage-persistence"),
            ]
            # An erasure this process (or another) left unfinished goes on.
            await erasures.resume_unfinished("api start")
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await analytics_client.close()
            await stripe_billing.close()
            await inference.close()
            await erasures.close()
            await exports.close()
            await http.aclose()
            await memories.client.close()
            await redis.aclose()
            await pool.close()

    app = FastAPI(
        title="The Deep System configuration API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        # Every route answers these in ErrorBody's shape (FastAPI would document its own 422 body).
        responses={413: {"model": ErrorBody}, 422: {"model": ErrorBody}, 429: {"model": ErrorBody}},
    )
    install_error_handlers(app)
    # The largest body any route takes is a character card's image.
    app.add_middleware(BodyLimit, max_bytes=MAX_IMPORT_BYTES)
    for module in (
        meta,
        auth,
        owners,
        agents,
        sandbox,
        memories,
        deployments,
        tokens,
        presets,
        gallery,
        analytics,
        billing,
        traits,
        users,
    ):
        app.include_router(module.router)
    # The owner console: its pages call the routes above from the same origin, with the session cookie.
    app.mount("/console", StaticFiles(directory=CONSOLE_DIR, html=True), name="console")
    return app
