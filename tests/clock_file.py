"""The test clock (settings.clock_file) as tests move it: the processors and the Discord emulator read the
file at each look, so it is replaced whole, never seen half written."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path


def set_clock(path: Path, at: datetime) -> None:
    staged = path.with_suffix(".next")
    staged.write_text(at.isoformat())
    staged.replace(path)
