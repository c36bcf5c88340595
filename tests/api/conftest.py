"""Fixtures of the control plane tests: a PostgreSQL schema and a topic namespace per test module, the
Discord emulator for token validation, the API in process, and a recorder that proves no response
body ever contains a bot token."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from api.db import create_pool
from api.ratelimit import RateLimit
from api.schemas import OwnerCreate, Role
from api.store import create_owner
from emulator.discord.server import DiscordEmulator
from infra.migrate import migrate
from infra.stack.stripe_mock import build_stripe_mock, check_stripe_api, stripe_mock_argv
from models.tiers import Tier
from settings import Settings, load_settings
from streams.catalog import AGENT_DEPLOYMENTS, OWNER_NOTIFICATIONS, TOKENS_HEALTH
from tests.kafka_namespace import temporary_namespace
from tests.waiting import wait_until
from vault.keyring import generate_key_spec

API_TOPICS = (AGENT_DEPLOYMENTS, TOKENS_HEALTH, OWNER_NOTIFICATIONS)
# The console's OAuth2 application in the emulator; the API runs at http://api (the ASGI transport).
OAUTH2_CLIENT_ID = "1400000000000000077"
OAUTH2_SECRET = "api-tests-secret"
REDIRECT_URL = "http://api/auth/discord/callback"
WEBHOOK_SECRET = "whsec_api_tests"


@pytest.fixture(scope="module")
def base_settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="module")
async def pg_dsn(base_settings: Settings) -> AsyncIterator[str]:
    """A schema of this module's own, migrated: its outbox, its relay, nobody else's rows."""
    schema = f"t_api_{uuid4().hex[:10]}"
    conn = await asyncpg.connect(base_settings.postgres_dsn)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        dsn = f"{base_settings.postgres_dsn}?search_path={schema}"
        await migrate(dsn)
        yield dsn
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


@pytest.fixture(scope="module")
async def pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(pg_dsn, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
async def namespace(base_settings: Settings) -> AsyncIterator[str]:
    async with temporary_namespace(base_settings.kafka_bootstrap, API_TOPICS) as namespace:
        yield namespace


@pytest.fixture(scope="module")
async def emulator() -> AsyncIterator[DiscordEmulator]:
    emulator = DiscordEmulator()
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture(scope="module")
async def stripe_mock(
    base_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """stripe-mock (built once into the cache, as `deep stack up` builds it) on a port of this module's:
    its base URL."""
    binary = await asyncio.to_thread(
        build_stripe_mock, base_settings, log_file=tmp_path_factory.mktemp("stripe") / "install.log"
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    https_socket = tmp_path_factory.mktemp("stripe") / "https.sock"
    process = await asyncio.create_subprocess_exec(
        *stripe_mock_argv(binary, port, https_socket), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"

    async def answers() -> bool:
        with contextlib.suppress(httpx.HTTPError, ConnectionError):
            await check_stripe_api(url, base_settings.stripe_secret_key)
            return True
        return False

    try:
        # It loads Stripe's whole OpenAPI document first: seconds on a busy machine.
        await wait_until(answers, "stripe-mock to answer", timeout_s=90)
        yield url
    finally:
        process.terminate()
        await process.wait()


@pytest.fixture(scope="module")
def api_settings(
    base_settings: Settings,
    namespace: str,
    emulator: DiscordEmulator,
    stripe_mock: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Settings:
    emulator.register_oauth2_client(OAUTH2_CLIENT_ID, OAUTH2_SECRET, [REDIRECT_URL])
    return dataclasses.replace(
        base_settings,
        state_dir=tmp_path_factory.mktemp("state"),
        token_keys=generate_key_spec("k1"),
        discord_api_base=emulator.api_url,
        discord_oauth_url=emulator.base_url,
        discord_client_id=OAUTH2_CLIENT_ID,
        discord_client_secret=OAUTH2_SECRET,
        discord_redirect_url=REDIRECT_URL,
        stripe_api_base=stripe_mock,
        stripe_webhook_secret=WEBHOOK_SECRET,
        topic_namespace=namespace,
    )


class Recorder:
    """Every response body the tests saw, and every bot token they created."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.tokens: set[str] = set()

    async def on_response(self, response: httpx.Response) -> None:
        self.bodies.append(await response.aread())

    def leaked(self) -> list[str]:
        return [token for token in self.tokens for body in self.bodies if token.encode() in body]


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(autouse=True)
def no_token_in_any_response(recorder: Recorder) -> Any:
    yield
    assert recorder.leaked() == [], "a response contained a bot token"


async def started(app: FastAPI, recorder: Recorder) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api", event_hooks={"response": [recorder.on_response]}
        ) as client:
            yield client


@pytest.fixture(scope="module")
async def client(api_settings: Settings, pg_dsn: str, recorder: Recorder) -> AsyncIterator[httpx.AsyncClient]:
    """The API without background tasks (tests run the relay when they need one)."""
    app = create_app(api_settings, postgres_dsn=pg_dsn, background=False, rate_limit=RateLimit(100_000, 60))
    async for client in started(app, recorder):
        yield client


def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


@pytest.fixture(scope="module")
async def admin_key(pool: asyncpg.Pool) -> str:
    created = await create_owner(pool, OwnerCreate(name="operator", tier=Tier.enterprise, role=Role.admin))
    return created.key.api_key


NewOwner = Callable[..., Awaitable[dict[str, str]]]


@pytest.fixture(scope="module")
def new_owner(client: httpx.AsyncClient, admin_key: str) -> NewOwner:
    """An owner of a tier, as the auth headers of their API key."""

    async def make(tier: Tier = Tier.free, name: str = "owner") -> dict[str, str]:
        response = await client.post(
            "/owners", json={"name": name, "tier": tier.value}, headers=auth(admin_key)
        )
        assert response.status_code == 201, response.text
        return auth(response.json()["key"]["api_key"])

    return make


NewBot = Callable[..., Awaitable[tuple[str, str]]]


@pytest.fixture(scope="module")
def new_bot(emulator: DiscordEmulator, recorder: Recorder) -> Callable[..., tuple[str, str]]:
    """A bot in the emulator, in `guilds` guilds: (bot id, token). The recorder watches for the token."""

    def make(guilds: int = 1, username: str = "bot") -> tuple[str, str]:
        guild_ids = [emulator.add_guild(f"g{index}").id for index in range(guilds)]
        bot = emulator.add_bot(username, guild_ids=guild_ids)
        recorder.tokens.add(bot.token)
        return bot.id, bot.token

    return make


@pytest.fixture(scope="module")
def add_token(
    client: httpx.AsyncClient, new_bot: Callable[..., tuple[str, str]]
) -> Callable[..., Awaitable[Any]]:
    """Add a fresh emulator bot's token for an owner through the API: the token's state as JSON."""

    async def add(headers: dict[str, str], guilds: int = 1) -> dict[str, Any]:
        _, token = new_bot(guilds)
        response = await client.post("/tokens", json={"token": token}, headers=headers)
        assert response.status_code == 201, response.text
        return dict(response.json())

    return add


def guild_id() -> str:
    return str(uuid4().int % 10**18)


SignIn = Callable[..., Awaitable[dict[str, str]]]


@pytest.fixture(scope="module")
def sign_in(client: httpx.AsyncClient, emulator: DiscordEmulator) -> SignIn:
    """Signs `discord_user_id` in to the console through the emulator's OAuth2, as a browser does: the
    session cookie, as headers (with the console's CSRF header) for requests of its own."""

    async def run(discord_user_id: str, next_path: str = "/console/") -> dict[str, str]:
        emulator.oauth2.sign_in(discord_user_id)
        login = await client.get("/auth/discord/login", params={"next": next_path})
        assert login.status_code == 302, login.text
        async with httpx.AsyncClient() as browser:
            consent = await browser.get(login.headers["Location"])
        assert consent.status_code == 302, consent.text
        callback = await client.get(consent.headers["Location"].removeprefix("http://api"))
        assert callback.status_code == 302, callback.text
        cookie = client.cookies.get("deep_session")
        assert cookie is not None
        # Each test sends the cookie it means to: the shared client keeps none between sign-ins.
        client.cookies.clear()
        return {"Cookie": f"deep_session={cookie}", "X-Deep-Console": "1"}

    return run
