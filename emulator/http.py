"""Lifecycle of an emulator's aiohttp server on 127.0.0.1 (shared by the OpenAI and ElevenLabs emulators)."""

from __future__ import annotations

from typing import Self

from aiohttp import web


class LocalHttpServer:
    """Subclasses add routes in `routes`; `async with` starts and stops the server on a free port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._port = port
        self._runner: web.AppRunner | None = None

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    @property
    def port(self) -> int:
        if self._runner is None:
            raise RuntimeError("server not started")
        return int(self._runner.addresses[0][1])

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> Self:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        self.routes(app)
        # A request whose client disconnects is cancelled, as a real upstream would stop working on it.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self._port, backlog=4096).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
