"""The server under test: the one named by DISCORD_CONFORMANCE_* (settings.load_conformance_target), or the
Discord emulator started here. Each test gets a fresh scene (guild, members, bot), a REST client with the
bot's token, and raw gateway connections (tests/emulator/emulator_helpers.RawGateway: exactly the payloads
a test sends, every frame the server sends back)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
from multidict import CIMultiDictProxy

from emulator.discord import DiscordEmulator, EmulatorConfig
from settings import load_conformance_target
from tests.conformance.driver import Driver, Scene
from tests.emulator.emulator_helpers import DEFAULT_INTENTS, RawGateway

# Discord: after INVALID_SESSION, wait a random 1-5 s before identifying again.
IDENTIFY_RETRY_S = 5.0
# The emulator's settings for the suite: Discord's limits and windows, except a token life short enough to
# see it end (Discord's 15 minutes are checked only where the server's own is under a minute).
EMULATOR_TOKEN_TTL_S = 4.0
SHORTEST_WAITED_TTL_S = 60.0


@dataclass(frozen=True)
class Endpoints:
    gateway_url: str
    api_base: str
    driver_url: str
    token_ttl_s: float


@pytest.fixture(scope="session")
async def endpoints() -> AsyncIterator[Endpoints]:
    target = load_conformance_target()
    if target.external:
        yield Endpoints(target.gateway_url, target.api_base, target.driver_url, target.token_ttl_s)
        return
    emulator = DiscordEmulator(
        EmulatorConfig(identify_interval_s=0.0, interaction_token_ttl_s=EMULATOR_TOKEN_TTL_S)
    )
    base = await emulator.start()
    try:
        yield Endpoints(emulator.gateway_url, emulator.api_url, base, EMULATOR_TOKEN_TTL_S)
    finally:
        await emulator.stop()


@pytest.fixture
async def driver(endpoints: Endpoints) -> AsyncIterator[Driver]:
    control = Driver(endpoints.driver_url)
    yield control
    await control.close()


@pytest.fixture
async def scene(driver: Driver) -> Scene:
    return await driver.scene()


@dataclass(frozen=True)
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: Any


class Api:
    """REST calls as the scene's bot."""

    def __init__(self, session: aiohttp.ClientSession, base: str, token: str) -> None:
        self.session = session
        self.base = base.rstrip("/")
        self.token = token

    async def __call__(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> Reply:
        headers = {"Authorization": f"Bot {self.token}"} if auth else {}
        if body is not None:
            headers["Content-Type"] = "application/json"
        data = None if body is None else orjson.dumps(body)
        async with self.session.request(method, self.base + path, data=data, headers=headers) as response:
            raw = await response.read()
            try:
                parsed = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                parsed = raw.decode(errors="replace")
            return Reply(response.status, response.headers, parsed)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


@pytest.fixture
def api(http: aiohttp.ClientSession, endpoints: Endpoints, scene: Scene) -> Api:
    return Api(http, endpoints.api_base, scene.bot_token)


Connect = Callable[..., Awaitable[RawGateway]]


@pytest.fixture
async def connect(http: aiohttp.ClientSession, endpoints: Endpoints) -> AsyncIterator[Connect]:
    """Opens a gateway connection (HELLO read); every one is closed after the test."""
    opened: list[RawGateway] = []

    async def open_one(url: str | None = None) -> RawGateway:
        gateway = RawGateway(http, (url or endpoints.gateway_url).rstrip("/") + "/", compress=False)
        opened.append(gateway)
        await gateway.connect()
        return gateway

    yield open_one
    await asyncio.gather(*(gateway.close() for gateway in opened))


async def identify(gateway: RawGateway, token: str, intents: int = DEFAULT_INTENTS) -> dict[str, Any]:
    """IDENTIFY until READY (an early one is answered INVALID_SESSION: wait as Discord asks, then again);
    returns the READY frame."""
    while True:
        await gateway.send(2, {"token": token, "intents": intents, "properties": {"os": "linux"}})
        frame = await gateway.frame()
        if frame["op"] == 9:
            await asyncio.sleep(IDENTIFY_RETRY_S)
            continue
        assert frame["t"] == "READY", frame
        return frame


async def ready_session(
    connect: Connect, scene: Scene, intents: int = DEFAULT_INTENTS
) -> tuple[RawGateway, dict[str, Any], int]:
    """A connected, identified bot whose initial GUILD_CREATE has arrived: (gateway, READY, last seq)."""
    gateway = await connect()
    ready = await identify(gateway, scene.bot_token, intents)
    guild_create = await gateway.dispatch("GUILD_CREATE")
    return gateway, ready, int(guild_create["s"])
