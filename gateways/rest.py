"""Discord REST through discord.py's HTTPClient: its per-route buckets, 429 retry_after handling and
global-limit lock, one client per active bot, all on the runner's one aiohttp session.

discord.py's login() would open a ClientSession per bot and spend a users/@me call on each; a runner already
knows its bots, so a client here is the HTTPClient with the shared session and the token set, created on a
bot's first request and dropped when it has been idle a while.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord
import orjson
from discord.http import HTTPClient, Route
from pydantic import BaseModel, ConfigDict, SecretStr

from gateways.actions import RestCall
from gateways.identify import GatewayBot
from models.actions import Attachment

DISCORD_API_BASE = "https://discord.com/api/v10"
# Discord's global limit per token; discord.py only reacts to a global 429, this keeps us under it.
REQUESTS_PER_S = 50.0
IDLE_S = 600.0
# A 429 asking for a longer wait than this fails the request instead of stalling the bot's queue.
MAX_RATELIMIT_WAIT_S = 60.0


class Application(BaseModel):
    """GET /applications/@me, the parts the edge reads: the id commands and interactions belong to, and the
    flags saying which privileged intents Discord granted."""

    model_config = ConfigDict(extra="ignore")

    id: str
    flags: int = 0


def use_api_base(api_base: str) -> None:
    """Point discord.py at `api_base` (an emulator, in tests and benchmarks); one base per process."""
    Route.BASE = api_base.rstrip("/")


class RequestRate:
    """A token bucket: at most `rate` requests per second, bursts of up to `rate`."""

    __slots__ = ("_allowance", "_last", "_rate")

    def __init__(self, rate: float, now: float) -> None:
        self._rate = rate
        self._allowance = rate
        self._last = now

    def delay(self, now: float) -> float:
        """Spend one request; returns how long to wait before sending it (0: send now)."""
        self._allowance = min(self._rate, self._allowance + (now - self._last) * self._rate)
        self._last = now
        self._allowance -= 1
        return 0.0 if self._allowance >= 0 else -self._allowance / self._rate


@dataclass(slots=True)
class BotRest:
    http: HTTPClient
    rate: RequestRate
    last_used: float

    async def request(self, call: RestCall, body: dict[str, Any] | list[Any] | None = None) -> Any:
        now = time.monotonic()
        self.last_used = now
        if call.counts_globally:
            wait = self.rate.delay(now)
            if wait > 0:
                await asyncio.sleep(wait)
        route = Route(call.method, call.path, **call.params)
        kwargs: dict[str, Any] = {}
        payload = body if body is not None else call.body
        if call.attachment is not None:
            kwargs["form"] = multipart_form(payload or {}, call.attachment)
        elif payload is not None:
            kwargs["json"] = payload
        if call.reason:
            kwargs["reason"] = call.reason
        return await self.http.request(route, **kwargs)


def multipart_form(payload: dict[str, Any] | list[Any], attachment: Attachment) -> list[dict[str, Any]]:
    """A message with a file as discord.py sends it: the JSON payload, then the file as files[0]."""
    return [
        {"name": "payload_json", "value": orjson.dumps(payload).decode()},
        {
            "name": "files[0]",
            "value": attachment.data,
            "filename": attachment.filename,
            "content_type": attachment.content_type,
        },
    ]


def _http_client(session: aiohttp.ClientSession, token: SecretStr) -> HTTPClient:
    http = HTTPClient(asyncio.get_running_loop(), max_ratelimit_timeout=MAX_RATELIMIT_WAIT_S)
    # What static_login() sets up, minus its own session and its users/@me request.
    setattr(http, "_HTTPClient__session", session)  # noqa: B010 - name-mangled private attribute
    http._global_over = asyncio.Event()
    http._global_over.set()
    http.token = token.get_secret_value()
    return http


class RestClients:
    def __init__(self, session: aiohttp.ClientSession, requests_per_s: float = REQUESTS_PER_S) -> None:
        self._session = session
        self._requests_per_s = requests_per_s
        self._clients: dict[str, BotRest] = {}
        # The application each bot belongs to (application commands and interaction webhooks are its).
        self._applications: dict[str, Application] = {}

    def __len__(self) -> int:
        return len(self._clients)

    def client(self, bot_id: str, token: SecretStr) -> BotRest:
        rest = self._clients.get(bot_id)
        if rest is None:
            now = time.monotonic()
            rest = BotRest(_http_client(self._session, token), RequestRate(self._requests_per_s, now), now)
            self._clients[bot_id] = rest
        return rest

    async def application(self, bot_id: str, token: SecretStr, *, fresh: bool = False) -> Application:
        """The bot's application, asked of Discord once, or again with `fresh` (its flags change when the
        owner switches an intent in the developer portal)."""
        application = self._applications.get(bot_id)
        if application is None or fresh:
            data = await self.client(bot_id, token).request(RestCall("GET", "/applications/@me"))
            application = self._applications[bot_id] = Application.model_validate(data)
        return application

    async def application_id(self, bot_id: str, token: SecretStr) -> str:
        return (await self.application(bot_id, token)).id

    def drop(self, bot_id: str) -> None:
        """Forget the bot's client (its token dies with it); the shared session stays open."""
        self._applications.pop(bot_id, None)
        rest = self._clients.pop(bot_id, None)
        if rest is not None:
            rest.http.token = None

    def evict_idle(self, idle_s: float = IDLE_S) -> int:
        cutoff = time.monotonic() - idle_s
        idle = [bot_id for bot_id, rest in self._clients.items() if rest.last_used < cutoff]
        for bot_id in idle:
            self.drop(bot_id)
        return len(idle)

    async def gateway_bot(self, bot_id: str, token: SecretStr) -> GatewayBot:
        """GET /gateway/bot: shard count and identify budget. A 401 raises discord.HTTPException (401)."""
        data = await self.client(bot_id, token).request(RestCall("GET", "/gateway/bot"))
        return GatewayBot.model_validate(data)


def is_unauthorized(exc: BaseException) -> bool:
    return isinstance(exc, discord.HTTPException) and exc.status == 401
