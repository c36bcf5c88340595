"""The demo's music library: a few generated tones, so that /play has something to play without any
recording shipped or downloaded."""

from __future__ import annotations

import subprocess
from pathlib import Path

# (title, frequency in Hz, seconds): what /play finds in the demo.
DEMO_TRACKS = (("Lofi Sunset", 220.0, 30.0), ("Jazz Cafe", 330.0, 30.0), ("Synthwave Drive", 440.0, 30.0))


def write_tone(path: Path, frequency_hz: float, seconds: float) -> Path:
    """A sine tone of `frequency_hz` for `seconds`, encoded by ffmpeg as the file's suffix says."""
    path.parent.mkdir(parents=True, exist_ok=True)
    source = f"sine=frequency={frequency_hz}:sample_rate=48000:duration={seconds}"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            source,
            "-ac",
            "2",
            str(path),
        ],
        check=True,
    )
    return path


def demo_library(folder: Path) -> Path:
    """The demo's tracks under `folder` (made once), as FLAC."""
    for title, frequency_hz, seconds in DEMO_TRACKS:
        path = folder / f"{title}.flac"
        if not path.is_file():
            write_tone(path, frequency_hz, seconds)
    return folder
