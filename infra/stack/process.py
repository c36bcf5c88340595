"""Process plumbing shared by the native services: pidfiles, spawning, stopping, installing."""

from __future__ import annotations

import os
import pwd
import resource
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from rich.console import Console
from rich.markup import escape

# Long paths and commands stay on one line (off a terminal rich would assume 80 columns and cut them).
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)


def say(service: str, message: str, command: Sequence[str] | None = None) -> None:
    """One progress line, with the command it runs when there is one."""
    line = f"[bold]\\[{escape(service)}][/bold] {escape(message)}"
    if command is not None:
        line += f": [dim]{escape(shlex.join(command))}[/dim]"
    console.print(line)


@dataclass(frozen=True)
class PidRecord:
    """A pid plus the kernel's start time of that process, so a recycled pid is never mistaken for ours."""

    pid: int
    start_ticks: int


def format_pid_record(record: PidRecord) -> str:
    return f"{record.pid} {record.start_ticks}\n"


def parse_pid_record(text: str) -> PidRecord | None:
    parts = text.split()
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        return None
    return PidRecord(pid=int(parts[0]), start_ticks=int(parts[1]))


def parse_proc_stat(stat: str) -> tuple[str, int]:
    """(state, start time in clock ticks) from /proc/<pid>/stat; the command name may contain spaces."""
    fields = stat[stat.rindex(")") + 2 :].split()
    # After the name: field 3 is the state, field 22 the start time (proc(5)).
    return fields[0], int(fields[19])


def live_start_ticks(pid: int) -> int | None:
    """Start time of a live process, None when it is gone or a zombie (a zombie has exited already)."""
    try:
        state, start_ticks = parse_proc_stat(Path(f"/proc/{pid}/stat").read_text())
        # A leader whose own thread ended shows Z while its other threads still run (the JVM on shutdown).
        if state in ("Z", "X") and len(os.listdir(f"/proc/{pid}/task")) <= 1:
            return None
    except (FileNotFoundError, ProcessLookupError):
        return None
    return start_ticks


def _running_record(pidfile: Path) -> PidRecord | None:
    try:
        record = parse_pid_record(pidfile.read_text())
    except FileNotFoundError:
        return None
    if record is None or live_start_ticks(record.pid) != record.start_ticks:
        return None
    return record


def running_pid(pidfile: Path) -> int | None:
    """The pid in our pidfile when that very process is still alive."""
    record = _running_record(pidfile)
    return record.pid if record else None


def spawn(
    argv: Sequence[str],
    *,
    pidfile: Path,
    log_file: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start a daemon in its own session (it outlives this CLI), output appended to log_file."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            preexec_fn=_raise_open_files_limit,
            **_user_args(user),
        )
    start_ticks = live_start_ticks(proc.pid)
    if start_ticks is not None:
        pidfile.write_text(format_pid_record(PidRecord(proc.pid, start_ticks)))
    return proc


# A broker keeps a few files open per partition; the usual 1,024 (or a container's 20,000) runs out once
# many topics exist. Root may raise the hard limit up to the kernel's nr_open.
OPEN_FILES_WANTED = 1 << 20


def _raise_open_files_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        ceiling = int(Path("/proc/sys/fs/nr_open").read_text())
    except (OSError, ValueError):
        ceiling = hard
    wanted = min(OPEN_FILES_WANTED, ceiling)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), max(hard, wanted)))
    except (ValueError, OSError):
        # Not root: take what the hard limit allows.
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class _UserArgs(TypedDict, total=False):
    user: int
    group: int
    extra_groups: list[int]


def _user_args(user: str | None) -> _UserArgs:
    """Popen arguments that drop root to `user`, supplementary groups included."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def stop(pidfile: Path, *, sig: signal.Signals, timeout: float) -> int | None:
    """Stop the process our pidfile names (its whole process group after the timeout); returns its pid."""
    record = _running_record(pidfile)
    if record is None:
        pidfile.unlink(missing_ok=True)
        return None
    os.kill(record.pid, sig)
    if not _wait_gone(record, timeout):
        # spawn() made the daemon a session leader, so its group is exactly its own children.
        os.killpg(record.pid, signal.SIGKILL)
        _wait_gone(record, 10.0)
    pidfile.unlink(missing_ok=True)
    return record.pid


def _wait_gone(record: PidRecord, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if live_start_ticks(record.pid) != record.start_ticks:
            return True
        time.sleep(0.1)
    return live_start_ticks(record.pid) != record.start_ticks


def tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


class StepFailed(RuntimeError):
    """An install or init step exited non-zero; the message carries the tail of its output."""


def run_step(
    service: str,
    description: str,
    argv: Sequence[str],
    *,
    log_file: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    stdin: str | None = None,
) -> None:
    """Run one install/init step, printing what it does; its output goes to log_file."""
    say(service, description, argv)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        log.write(f"\n$ {shlex.join(argv)}\n".encode())
        log.flush()
        result = subprocess.run(
            list(argv),
            input=stdin.encode() if stdin is not None else None,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            check=False,
            **_user_args(user),
        )
    if result.returncode != 0:
        raise StepFailed(f"{description} failed (exit {result.returncode}):\n{tail(log_file)}")


def apt_install(packages: Sequence[str], *, log_file: Path) -> None:
    """Install Debian packages; only called with packages whose binaries are missing."""
    if not packages:
        return
    if os.geteuid() != 0:
        raise StepFailed(f"missing packages {', '.join(packages)}: apt-get install them, or run as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run_step("apt", "refreshing package lists", ["apt-get", "update"], log_file=log_file, env=env)
    run_step(
        "apt",
        f"installing {', '.join(packages)}",
        ["apt-get", "install", "-y", "--no-install-recommends", *packages],
        log_file=log_file,
        env=env,
    )
