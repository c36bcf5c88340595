"""What every stack service offers, and the start/wait/stop life cycle shared by the native daemons."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import ClassVar

from infra.stack.process import StepFailed, running_pid, say, spawn, stop, tail
from settings import Settings

CHECK_TIMEOUT_S = 10.0


class StartFailed(RuntimeError):
    """The daemon exited or never answered its health check."""


class Outcome(StrEnum):
    STARTED = "started"
    RUNNING = "already running"
    FAILED = "failed"


@dataclass(frozen=True)
class UpResult:
    name: str
    outcome: Outcome
    detail: str = ""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    address: str
    healthy: bool
    health: str
    pid: int | None
    log_file: Path | None


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    cwd: Path
    env: Mapping[str, str] | None = None
    user: str | None = None


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def free_ports(count: int) -> list[int]:
    """`count` different ports nothing listens on now. Each socket stays bound until all are chosen: bound
    and closed one at a time, the system can hand out the same port twice."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


async def wait_until(
    probe: Callable[[], Awaitable[None]], *, proc: subprocess.Popen[bytes] | None, within_s: float
) -> str | None:
    """Poll `probe` until it succeeds; the reason it never did, or None once it answers."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    last = "no answer yet"
    while True:
        if proc is not None and proc.poll() is not None:
            return f"process exited with code {proc.returncode}"
        try:
            await asyncio.wait_for(probe(), timeout=CHECK_TIMEOUT_S)
            return None
        except Exception as exc:
            last = describe(exc)
        if loop.time() >= deadline:
            return f"not answering after {within_s:.0f}s ({last})"
        await asyncio.sleep(0.25)


class Service(ABC):
    name: ClassVar[str]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    @abstractmethod
    def address(self) -> str: ...

    @property
    def log_file(self) -> Path | None:
        return None

    def pid(self) -> int | None:
        return None

    def missing_packages(self) -> list[str]:
        """Debian packages whose binaries this service needs and the machine lacks."""
        return []

    @abstractmethod
    async def check(self) -> None:
        """A real request to the service; raises when it does not answer."""

    @abstractmethod
    async def up(self) -> UpResult: ...

    @abstractmethod
    def down(self) -> str: ...

    async def status(self) -> ServiceStatus:
        try:
            await asyncio.wait_for(self.check(), timeout=CHECK_TIMEOUT_S)
            healthy, health = True, "ok"
        except Exception as exc:
            healthy, health = False, describe(exc)
        return ServiceStatus(self.name, self.address, healthy, health, self.pid(), self.log_file)


class NativeService(Service):
    """A daemon this package installs, configures, starts and stops, with its state under state_dir/<name>."""

    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    start_timeout: ClassVar[float] = 60.0
    stop_timeout: ClassVar[float] = 30.0

    @property
    def dir(self) -> Path:
        return self.settings.state_dir / self.name

    @property
    def pidfile(self) -> Path:
        return self.dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.dir / f"{self.name}.log"

    @property
    def install_log(self) -> Path:
        return self.dir / "install.log"

    @property
    @abstractmethod
    def endpoints(self) -> list[tuple[str, int]]:
        """Where the daemon listens; each must be free before it starts."""

    @abstractmethod
    def prepare(self) -> None:
        """Fetch binaries, write configuration, initialise data: whatever is missing (blocking)."""

    @abstractmethod
    def launch(self) -> Launch: ...

    async def ready(self) -> None:
        """What to wait for after spawning; the full check unless the service needs setup first."""
        await self.check()

    async def after_start(self) -> None:
        """Setup that needs the freshly started daemon (roles, databases)."""

    def pid(self) -> int | None:
        return running_pid(self.pidfile)

    async def up(self) -> UpResult:
        pid = self.pid()
        if pid is not None:
            error = await wait_until(self.check, proc=None, within_s=self.start_timeout)
            if error is None:
                return UpResult(self.name, Outcome.RUNNING, f"pid {pid}")
            return UpResult(self.name, Outcome.FAILED, f"pid {pid} is {error}\n{tail(self.log_file)}")
        taken = [f"{host}:{port}" for host, port in self.endpoints if port_open(host, port)]
        if taken:
            # A service this state dir did not start (another clone's stack, an operator's own) is used
            # when it answers as ours would; `down` leaves it alone since no pidfile of ours names it.
            try:
                await asyncio.wait_for(self.check(), timeout=CHECK_TIMEOUT_S)
            except Exception as exc:
                return UpResult(
                    self.name,
                    Outcome.FAILED,
                    f"{taken[0]} is taken by a process `deep stack` did not start and it does not answer "
                    f"as {self.name} ({describe(exc)})",
                )
            return UpResult(self.name, Outcome.RUNNING, f"answering at {taken[0]}, started elsewhere")
        try:
            pid = await self._start()
        except StepFailed as exc:
            return UpResult(self.name, Outcome.FAILED, str(exc))
        except Exception as exc:
            # Leave nothing half-started behind, so the next `up` begins from scratch.
            stop(self.pidfile, sig=signal.SIGKILL, timeout=5.0)
            return UpResult(self.name, Outcome.FAILED, f"{describe(exc)}\n{tail(self.log_file)}")
        return UpResult(self.name, Outcome.STARTED, f"pid {pid}")

    async def _start(self) -> int:
        self.dir.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self.prepare)
        launch = self.launch()
        say(self.name, f"starting on {self.address}, log {self.log_file}")
        proc = spawn(
            launch.argv,
            pidfile=self.pidfile,
            log_file=self.log_file,
            cwd=launch.cwd,
            env=launch.env,
            user=launch.user,
        )
        error = await wait_until(self.ready, proc=proc, within_s=self.start_timeout)
        if error is not None:
            raise StartFailed(error)
        await self.after_start()
        await self.check()
        return proc.pid

    def down(self) -> str:
        pid = stop(self.pidfile, sig=self.stop_signal, timeout=self.stop_timeout)
        return f"stopped pid {pid}" if pid is not None else "not running"
