"""Where a track's audio comes from, and ffmpeg decoding it to what the player sends: 48 kHz stereo s16le
PCM, 20 ms (3,840 bytes) a frame.

A track is a title of the music library (`DEEP_MUSIC_LIBRARY`; "/play lofi" plays the file titled lofi) or
a public http(s) URL, fetched under the persona images' address rules (gateways/media.py) and piped into
ffmpeg, which itself never reaches the network. Speech arrives as encoded audio bytes, piped the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import numpy as np

from gateways.autocomplete import library_files, matching_titles
from gateways.media import MediaRefused, public_response

log = logging.getLogger(__name__)

SAMPLE_RATE = 48_000
CHANNELS = 2
PCM_FRAME_BYTES = 960 * CHANNELS * 2
# A stream of a radio or a long mix may run for hours: only silence from the server ends it.
STREAM_TIMEOUT = aiohttp.ClientTimeout(sock_connect=10.0, sock_read=30.0)
STREAM_CHUNK = 16 * 1024
# What an audio URL may answer with: audio, Ogg, or a server that does not say.
AUDIO_CONTENT_TYPES = ("audio/", "application/ogg", "application/octet-stream")
FULL_VOLUME = 100


class TrackRefused(Exception):
    """The track cannot be played: the message names the field and why."""


@dataclass(frozen=True)
class LibraryFile:
    title: str
    path: Path


@dataclass(frozen=True)
class AudioUrl:
    url: str


Source = LibraryFile | AudioUrl


def resolve_track(track: str, library_root: Path) -> Source:
    """The source `track` names: an http(s) URL as it is, else the library title equal to it (ignoring case),
    else the first that starts with or contains it (as /play's autocomplete offers them)."""
    wanted = track.strip()
    if not wanted:
        raise TrackRefused("track: empty")
    if "://" in wanted:
        if not wanted.lower().startswith(("http://", "https://")):
            raise TrackRefused("track: only http(s) URLs and music library titles can be played")
        return AudioUrl(wanted)
    files = library_files(library_root)
    exact = [title for title in files if title.casefold() == wanted.casefold()]
    found = exact or matching_titles(sorted(files), wanted, limit=1)
    if not found:
        raise TrackRefused(f"track: no title in the music library matches {wanted!r}")
    return LibraryFile(found[0], files[found[0]])


def with_volume(pcm: bytes, volume: int) -> bytes:
    """s16le samples scaled to `volume` percent (up to 200), clipped rather than wrapped."""
    if volume == FULL_VOLUME:
        return pcm
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.int32) * volume // FULL_VOLUME
    return np.clip(samples, -32768, 32767).astype(np.int16).tobytes()


async def url_audio(session: aiohttp.ClientSession, url: str, *, allow_private: bool) -> AsyncIterator[bytes]:
    """The body of an audio URL, every address on the way public (unless allowed); raises MediaRefused."""
    async with public_response(
        session, "track", url, allow_private=allow_private, limits=STREAM_TIMEOUT
    ) as response:
        content_type = response.content_type
        if response.status != 200 or not content_type.startswith(AUDIO_CONTENT_TYPES):
            raise MediaRefused(f"track: answered {response.status} {content_type}")
        async for chunk in response.content.iter_chunked(STREAM_CHUNK):
            yield chunk


class PcmStream:
    """One ffmpeg process decoding a file, or bytes fed to its stdin, into PCM frames from `start_s` on."""

    def __init__(self, process: asyncio.subprocess.Process, feed: AsyncIterator[bytes] | None) -> None:
        self._process = process
        self._feeder = asyncio.create_task(self._feed(feed)) if feed is not None else None
        self.error: str | None = None
        self.frames = 0
        # One reader at a time: the player's, or close() draining what a killed process left in the pipe.
        self._reading = asyncio.Lock()

    @classmethod
    async def open(cls, source: Path | AsyncIterator[bytes], start_s: float = 0.0) -> PcmStream:
        """`source`: a file's path, or the encoded audio's bytes as they come."""
        where = str(source) if isinstance(source, Path) else "pipe:0"
        seek = ["-ss", f"{start_s:.3f}"] if start_s > 0 else []
        process = await asyncio.create_subprocess_exec(
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            *seek,
            "-i",
            where,
            "-f",
            "s16le",
            "-ar",
            str(SAMPLE_RATE),
            "-ac",
            str(CHANNELS),
            "pipe:1",
            stdin=asyncio.subprocess.PIPE if where == "pipe:0" else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process, None if isinstance(source, Path) else source)

    async def _feed(self, feed: AsyncIterator[bytes] | None) -> None:
        stdin = self._process.stdin
        assert feed is not None and stdin is not None
        try:
            async for chunk in feed:
                stdin.write(chunk)
                await stdin.drain()
        except MediaRefused as exc:
            self.error = str(exc)
        except (BrokenPipeError, ConnectionResetError):
            pass  # ffmpeg stopped reading: it failed (stderr says why) or the track was cut
        finally:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                stdin.close()

    async def read_frame(self) -> bytes | None:
        """The next 20 ms of PCM (the last one padded with silence); None at the end, with `error` set when
        the audio could not be decoded."""
        stdout = self._process.stdout
        assert stdout is not None
        try:
            async with self._reading:
                frame = await stdout.readexactly(PCM_FRAME_BYTES)
        except asyncio.IncompleteReadError as short:
            if short.partial:
                self.frames += 1
                return short.partial + bytes(PCM_FRAME_BYTES - len(short.partial))
            await self._ended()
            return None
        self.frames += 1
        return frame

    async def _ended(self) -> None:
        if self._feeder is not None:
            await self._feeder
        code = await self._process.wait()
        if code != 0 and self.error is None:
            stderr = self._process.stderr
            detail = (await stderr.read(500)).decode(errors="replace").strip() if stderr else ""
            self.error = f"ffmpeg exited with {code}: {detail.splitlines()[-1] if detail else 'no output'}"

    async def close(self) -> None:
        """Stop decoding (a skip, a stop, a leave): the process is killed and reaped."""
        if self._feeder is not None:
            self._feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._feeder
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
        # A full pipe pauses its reader, which then never sees the end: the process would never be reaped.
        stdout = self._process.stdout
        assert stdout is not None
        async with self._reading:
            await stdout.read()
        await self._process.wait()
