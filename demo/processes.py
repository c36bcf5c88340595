"""The demo's child processes: each in a process group of its own with its output in a log file,
restarted when a restartable one dies, and stopped together (SIGINT, then SIGKILL after a grace period).

Children also get SIGTERM from the kernel if the demo itself dies without cleaning up (PR_SET_PDEATHSIG),
so a killed demo leaves no platform running behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
MAX_RESTARTS = 3
# Restarts are counted over this window; a child that keeps dying within it stops the demo.
RESTART_WINDOW_S = 120.0
RESTART_DELAY_S = 1.0
LOG_TAIL_BYTES = 2000

_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: only async-signal-safe work (one syscall)."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(frozen=True)
class ChildSpec:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: Path
    # A child whose state cannot be rebuilt (the emulator holds the world in memory) is not restarted.
    restart: bool = True
    # Stopped after all the others, which may still talk to it while they shut down.
    stop_last: bool = False


@dataclass
class Child:
    spec: ChildSpec
    log_path: Path
    process: asyncio.subprocess.Process
    restarts: list[float] = field(default_factory=list)
    stopping: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    def log_tail(self) -> str:
        try:
            with self.log_path.open("rb") as file:
                file.seek(0, os.SEEK_END)
                file.seek(max(0, file.tell() - LOG_TAIL_BYTES))
                return file.read().decode("utf-8", "replace")
        except OSError:
            return ""


class ChildFailed(Exception):
    def __init__(self, child: Child) -> None:
        super().__init__(
            f"{child.spec.name} exited with status {child.process.returncode}; "
            f"its log {child.log_path} ends with:\n{child.log_tail()}"
        )
        self.child = child


class Supervisor:
    def __init__(
        self,
        log_dir: Path,
        on_event: Callable[[str], None] = log.info,
        restart_delay_s: float = RESTART_DELAY_S,
    ) -> None:
        self.log_dir = log_dir
        self.restart_delay_s = restart_delay_s
        self.children: dict[str, Child] = {}
        self._on_event = on_event
        self._failed: asyncio.Future[Child] | None = None
        self._watchers: list[asyncio.Task[None]] = []

    async def _spawn(self, spec: ChildSpec, log_path: Path) -> asyncio.subprocess.Process:
        with log_path.open("ab") as output:
            return await asyncio.create_subprocess_exec(
                *spec.argv,
                env=dict(spec.env),
                cwd=spec.cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    async def start(self, spec: ChildSpec) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{spec.name}.log"
        log_path.write_bytes(b"")
        child = Child(spec, log_path, await self._spawn(spec, log_path))
        self.children[spec.name] = child
        self._watchers.append(asyncio.create_task(self._watch(child), name=f"watch-{spec.name}"))
        return child

    def failure(self) -> asyncio.Future[Child]:
        """Resolves with the first child that died for good."""
        if self._failed is None:
            self._failed = asyncio.get_running_loop().create_future()
        return self._failed

    async def _watch(self, child: Child) -> None:
        while True:
            await child.process.wait()
            if child.stopping:
                return
            now = time.monotonic()
            child.restarts = [t for t in child.restarts if now - t < RESTART_WINDOW_S]
            if not child.spec.restart or len(child.restarts) >= MAX_RESTARTS:
                failed = self.failure()
                if not failed.done():
                    failed.set_result(child)
                return
            child.restarts.append(now)
            self._on_event(
                f"{child.spec.name} exited with status {child.process.returncode}; restarting "
                f"(log: {child.log_path})"
            )
            await asyncio.sleep(self.restart_delay_s)
            if child.stopping:
                return
            child.process = await self._spawn(child.spec, child.log_path)

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop every child: SIGINT to its process group, SIGKILL after `grace_s`; all at once, except the
        `stop_last` ones, which go after the others have exited."""
        for last in (False, True):
            group = [c for c in self.children.values() if c.spec.stop_last is last]
            for child in group:
                child.stopping = True
            await asyncio.gather(*(_stop_group(c.process, grace_s) for c in group))
        for watcher in self._watchers:
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)


async def _stop_group(process: asyncio.subprocess.Process, grace_s: float) -> None:
    if process.returncode is None:
        _signal_group(process.pid, signal.SIGINT)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), grace_s)
    # Whatever the child left in its group (a grandchild) goes too.
    _signal_group(process.pid, signal.SIGKILL)
    await process.wait()


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
