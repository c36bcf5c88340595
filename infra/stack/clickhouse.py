"""ClickHouse: the embedded chdb engine under state_dir by default, a server when CLICKHOUSE_URL is set.

get_clickhouse_client() is the one way the code base opens ClickHouse. chdb allows one engine path per
process, and only one process at a time may hold a path, so the client is cached per process.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import replace
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from infra.stack.process import live_start_ticks
from infra.stack.service import Outcome, Service, ServiceStatus, UpResult
from settings import Settings


@cache
def _client(url: str, path: str) -> Client:
    if url:
        return clickhouse_connect.get_client(dsn=url)
    Path(path).mkdir(parents=True, exist_ok=True)
    return clickhouse_connect.get_client(interface="chdb", path=path)


def get_clickhouse_client(settings: Settings) -> Client:
    """This process's ClickHouse client: chdb at settings.clickhouse_path, or the server at clickhouse_url."""
    return _client(settings.clickhouse_url, str(settings.clickhouse_path))


def parse_engine_pid(status_text: str) -> int | None:
    """The holder's pid from the `status` file the engine keeps in its path while open."""
    match = re.search(r"^PID:\s*(\d+)", status_text, re.MULTILINE)
    return int(match.group(1)) if match else None


def engine_holder(path: Path) -> int | None:
    """Another live process holding the embedded engine at path, if any (it then cannot be opened here)."""
    try:
        pid = parse_engine_pid((path / "status").read_text())
    except FileNotFoundError:
        return None
    if pid is None or pid == os.getpid() or live_start_ticks(pid) is None:
        return None
    return pid


def display_url(url: str) -> str:
    """The URL without credentials."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts._replace(netloc=netloc, query="").geturl()


class ClickHouse(Service):
    name = "clickhouse"

    @property
    def embedded(self) -> bool:
        return not self.settings.clickhouse_url

    @property
    def address(self) -> str:
        if self.embedded:
            return f"chdb:{self.settings.clickhouse_path}"
        return display_url(self.settings.clickhouse_url)

    def pid(self) -> int | None:
        return engine_holder(self.settings.clickhouse_path) if self.embedded else None

    def _select_one(self) -> None:
        if get_clickhouse_client(self.settings).command("SELECT 1") != 1:
            raise RuntimeError("SELECT 1 did not return 1")

    async def check(self) -> None:
        holder = self.pid()
        if holder is not None:
            # The engine is single-process: a live holder is the one process able to answer.
            return
        await asyncio.to_thread(self._select_one)

    async def up(self) -> UpResult:
        fresh = self.embedded and not self.settings.clickhouse_path.exists()
        holder = self.pid()
        try:
            await self.check()
        except Exception as exc:
            return UpResult(self.name, Outcome.FAILED, f"{self.address}: {exc}")
        if holder is not None:
            return UpResult(self.name, Outcome.RUNNING, f"embedded engine held by pid {holder}")
        kind = "embedded engine (in process, nothing to run)" if self.embedded else "external server"
        if fresh:
            return UpResult(self.name, Outcome.STARTED, f"{kind}: created")
        return UpResult(self.name, Outcome.RUNNING, kind)

    def down(self) -> str:
        return "embedded engine: nothing to stop" if self.embedded else "external server: not managed here"

    async def status(self) -> ServiceStatus:
        report = await super().status()
        holder = self.pid()
        if report.healthy and holder is not None:
            return replace(report, health=f"ok (held by pid {holder}, not queried)")
        return report
