"""The whole stack: its services, installed and started (`up`), stopped (`down`) and reported (`status`)
together, and the Debian packages the edge's voice needs."""

from __future__ import annotations

import asyncio
import ctypes.util
import fcntl
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from infra.stack.clickhouse import ClickHouse
from infra.stack.kafka import Kafka
from infra.stack.model_server import ModelServer
from infra.stack.postgres import Postgres
from infra.stack.process import apt_install
from infra.stack.redis import Redis
from infra.stack.service import Outcome, Service, ServiceStatus, UpResult
from infra.stack.stripe_mock import StripeMock
from infra.stack.weaviate import Weaviate
from settings import Settings

__all__ = ["Outcome", "ServiceStatus", "UpResult", "down", "services", "status", "up"]


def services(settings: Settings) -> list[Service]:
    stack: list[Service] = [
        Kafka(settings),
        Postgres(settings),
        Redis(settings),
        ClickHouse(settings),
        Weaviate(settings),
    ]
    if settings.local_model:
        stack.append(ModelServer(settings))
    if settings.stripe_mock_serves:
        stack.append(StripeMock(settings))
    return stack


# What the gateway runners' voice needs of Debian: ffmpeg decodes tracks, espeak-ng speaks without a model
# download, libopus0 encodes (through discord.py's binding). Package -> how to tell it is there.
EDGE_PACKAGES = {
    "ffmpeg": lambda: shutil.which("ffmpeg") is not None,
    "espeak-ng": lambda: shutil.which("espeak-ng") is not None,
    "libopus0": lambda: ctypes.util.find_library("opus") is not None,
}


def missing_edge_packages() -> list[str]:
    return [package for package, present in EDGE_PACKAGES.items() if not present()]


@contextmanager
def _exclusive(settings: Settings) -> Iterator[None]:
    """Serialise concurrent `up`/`down` calls (two terminals, a test fixture and make) on one state dir."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with (settings.state_dir / "stack.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


async def up(settings: Settings) -> list[UpResult]:
    """Install what is missing, start what is not running, and wait until every service answers."""
    with _exclusive(settings):
        stack = services(settings)
        needed = {package for service in stack for package in service.missing_packages()}
        missing = sorted(needed | set(missing_edge_packages()))
        await asyncio.to_thread(apt_install, missing, log_file=settings.state_dir / "install.log")
        return list(await asyncio.gather(*(service.up() for service in stack)))


def down(settings: Settings) -> list[tuple[str, str]]:
    with _exclusive(settings):
        return [(service.name, service.down()) for service in reversed(services(settings))]


async def status(settings: Settings) -> list[ServiceStatus]:
    return list(await asyncio.gather(*(service.status() for service in services(settings))))
