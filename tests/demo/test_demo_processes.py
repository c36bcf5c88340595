"""The demo's supervisor: children in process groups of their own, restarted, stopped, never left behind."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from demo.processes import MAX_RESTARTS, ChildFailed, ChildSpec, Supervisor
from settings import REPO_ROOT
from tests.waiting import wait_until

pytestmark = pytest.mark.stack


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def shell(name: str, script: str, cwd: Path, restart: bool = True) -> ChildSpec:
    return ChildSpec(name, ["/bin/sh", "-c", script], dict(os.environ), cwd, restart=restart)


async def test_stop_ends_each_child_and_what_it_started(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path)
    # The grandchild's pid goes to the log, so the test can watch it too.
    child = await supervisor.start(shell("parent", "sleep 60 & echo $!; wait", tmp_path))
    await wait_until(lambda: child.log_path.read_text().strip().isdigit(), "the grandchild's pid")
    grandchild = int(child.log_path.read_text())
    assert alive(child.pid) and alive(grandchild)
    await supervisor.stop(grace_s=5)
    await wait_until(lambda: not alive(grandchild), "the grandchild to go")
    assert not alive(child.pid)
    assert not supervisor.failure().done()


async def test_a_child_that_ignores_ctrl_c_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path)
    stubborn = (
        "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); print('up', flush=True); "
        "time.sleep(60)"
    )
    child = await supervisor.start(
        ChildSpec("stubborn", [sys.executable, "-c", stubborn], dict(os.environ), tmp_path)
    )
    await wait_until(lambda: "up" in child.log_path.read_text(), "the stubborn child to start")
    started = time.monotonic()
    await supervisor.stop(grace_s=0.5)
    assert child.process.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 5


async def test_a_dying_child_is_restarted_until_it_keeps_failing(tmp_path: Path) -> None:
    events: list[str] = []
    supervisor = Supervisor(tmp_path, events.append, restart_delay_s=0.01)
    child = await supervisor.start(shell("flaky", "echo run; exit 3", tmp_path))
    failed = await asyncio.wait_for(supervisor.failure(), 10)
    assert failed is child
    assert len(child.restarts) == MAX_RESTARTS
    assert child.log_path.read_text().count("run") == MAX_RESTARTS + 1
    assert len(events) == MAX_RESTARTS and "flaky exited with status 3; restarting" in events[0]
    await supervisor.stop()


async def test_a_child_that_cannot_restart_fails_with_its_log(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path)
    await supervisor.start(shell("world", "echo the world is gone; exit 2", tmp_path, restart=False))
    failed = await asyncio.wait_for(supervisor.failure(), 10)
    message = str(ChildFailed(failed))
    assert "world exited with status 2" in message and "the world is gone" in message
    assert failed.restarts == []
    await supervisor.stop()


def test_children_go_when_the_demo_is_killed(tmp_path: Path) -> None:
    """SIGKILL leaves the demo no chance to clean up: the kernel's parent-death signal stops its children."""
    script = textwrap.dedent(
        f"""
        import asyncio, os
        from pathlib import Path
        from demo.processes import ChildSpec, Supervisor

        async def main():
            here = Path({str(tmp_path)!r})
            child = await Supervisor(here).start(ChildSpec("sleep", ["sleep", "60"], os.environ, here))
            print(child.pid, flush=True)
            await asyncio.sleep(60)

        asyncio.run(main())
        """
    )
    demo = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    try:
        assert demo.stdout is not None
        sleeper = int(demo.stdout.readline())
        assert alive(sleeper)
        demo.send_signal(signal.SIGKILL)
        demo.wait(10)
        deadline = time.monotonic() + 10
        while alive(sleeper) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(sleeper)
    finally:
        demo.kill()
        demo.wait()
