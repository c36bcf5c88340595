"""The test clock: what the processors' timers and the emulators take for "now". The wall clock, or a time
read from a file that a test moves forward (settings.clock_file), so a day of routines runs in seconds and
the messages the emulated Discord stamps carry the same controlled time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(UTC)


def file_clock(path: Path) -> Clock:
    """Reads the file at each call: an ISO-8601 time with its offset."""

    def now() -> datetime:
        text = path.read_text().strip()
        at = datetime.fromisoformat(text)
        if at.tzinfo is None:
            raise ValueError(f"{path}: the clock's time {text!r} needs a UTC offset")
        return at

    return now


def clock_of(clock_file: Path | None) -> Clock:
    return file_clock(clock_file) if clock_file is not None else wall_clock
