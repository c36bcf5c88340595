"""DiscordEmulator: the engine served over HTTP (REST, gateway WebSocket at /, control API)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aiohttp import web

from settings.clock import Clock, wall_clock

from .control import STARTED_AT, TRAFFIC, add_control_routes, control_middleware, invalidate_sessions
from .engine import Engine
from .oauth2 import OAuth2Client, add_oauth2_routes
from .ratelimit import InvalidRequestCounter
from .rest import ENGINE, LIMITER, RestLimiter, add_rest_routes, rest_middleware
from .spec import EmulatorConfig, WorldSpec
from .traffic import TrafficGenerator, TrafficJob, TrafficRequest
from .world import Json

_PRUNE_EVERY_S = 30.0


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


class DiscordEmulator(Engine):
    """An in-process Discord: `await start()` returns the base URL; every Engine method (add_guild,
    post_user_message, actions, ...) is callable directly, mirroring the control API."""

    def __init__(
        self, config: EmulatorConfig | None = None, world: WorldSpec | None = None, clock: Clock = wall_clock
    ) -> None:
        super().__init__(config, clock)
        self.limiter = RestLimiter(self)
        self.traffic = TrafficGenerator(self)
        self.app = web.Application(middlewares=[rest_middleware, control_middleware])
        self.app[ENGINE] = self
        self.app[LIMITER] = self.limiter
        self.app[TRAFFIC] = self.traffic
        self.app[STARTED_AT] = time.monotonic()
        # The gateway lives at the root, like wss://gateway.discord.gg/.
        self.app.router.add_get("/", self.hub.handle)
        add_rest_routes(self.app)
        add_control_routes(self.app)
        self.oauth2 = add_oauth2_routes(self.app, self.world, clock)
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._pruner: asyncio.Task[None] | None = None
        if world is not None:
            self.load(world)

    @property
    def api_url(self) -> str:
        """What discord.http.Route.BASE should be set to."""
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        """What discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY should be set to."""
        return self.hub.gateway_url

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        # A deep backlog: benchmarks open thousands of gateway connections at once.
        site = web.TCPSite(runner, host, port, backlog=4096)
        await site.start()
        self._runner = runner
        bound_port = runner.addresses[0][1]
        self.base_url = (self.config.public_url or f"http://{_url_host(host)}:{bound_port}").rstrip("/")
        self._set_gateway_url()
        await self.voice.start(host)
        self._pruner = asyncio.get_running_loop().create_task(self._prune_forever())
        return self.base_url

    def set_config(self, config: EmulatorConfig) -> None:
        window_changed = config.invalid_request_window_s != self.config.invalid_request_window_s
        super().set_config(config)
        if window_changed:
            self.limiter.invalid = InvalidRequestCounter(config.invalid_request_window_s)
        if self._runner is not None and config.public_url:
            self.base_url = config.public_url.rstrip("/")
            self._set_gateway_url()

    def _set_gateway_url(self) -> None:
        scheme, rest = self.base_url.split("://", 1)
        self.hub.gateway_url = f"{'wss' if scheme == 'https' else 'ws'}://{rest}/"

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(_PRUNE_EVERY_S)
            self.limiter.prune(time.monotonic())

    async def stop(self) -> None:
        await self.traffic.stop()
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
            self._pruner = None
        self.hub.drop()
        for posting in list(self._posting):
            posting.cancel()
        await self.endpoints.close()
        await self.voice.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DiscordEmulator:
        if not self.base_url:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- control operations that live outside the engine -------------------------------------------------

    def register_oauth2_client(self, client_id: str, client_secret: str, redirect_uris: list[str]) -> None:
        self.oauth2.register(OAuth2Client(client_id, client_secret, tuple(redirect_uris)))

    def configure(self, **changes: Any) -> EmulatorConfig:
        """Change settings at runtime (e.g. tiny rate limits in a test)."""
        config = EmulatorConfig.model_validate({**self.config.model_dump(), **changes})
        self.set_config(config)
        return config

    def stats(self, bot_id: str) -> Json:
        return self.hub.bot_stats(self.world.bot(bot_id))

    def drop_connections(self, bot_id: str | None = None) -> int:
        return self.hub.drop(bot_id)

    async def send_reconnect(self, bot_id: str | None = None) -> int:
        return await self.hub.request_reconnect(bot_id)

    async def invalidate_sessions(self, bot_id: str, resumable: bool) -> int:
        return await invalidate_sessions(self.hub, bot_id, resumable)

    def invalid_requests(self) -> Json:
        return self.limiter.snapshot(time.monotonic())

    def start_traffic(self, **request: Any) -> TrafficJob:
        return self.traffic.start(TrafficRequest.model_validate(request))

    async def stop_traffic(self, job_id: int | None = None) -> list[TrafficJob]:
        return await self.traffic.stop(job_id)
