"""One voice connection's player: PCM from the current source, the volume applied, Opus-encoded and sent a
frame every 20 ms on a fixed schedule (gateways/voice/pacing.py).

Speech goes over the music: the track holds (its decoder waits on the full pipe) while a reply is said, then
goes on. Pausing, or nothing left to say, sends Opus silence five times and drops the speaking flag, as
Discord asks. Every end of a track or a speech is reported once, with its reason, through `on_end`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import discord.opus

from gateways.voice.pacing import FRAME_S, FrameSchedule
from gateways.voice.rtp import SILENCE_FRAME, SILENCE_FRAMES_AFTER_AUDIO
from gateways.voice.sources import FULL_VOLUME, PcmStream, with_volume

log = logging.getLogger(__name__)

EndReason = Literal["finished", "skipped", "stopped", "failed"]


class AudioSink(Protocol):
    """Where the frames go: the voice connection."""

    @property
    def ready(self) -> bool: ...

    async def wait_ready(self) -> None: ...

    async def speaking(self, on: bool) -> None: ...

    def send_frame(self, opus: bytes) -> None: ...


@dataclass
class Playing:
    """A track or a speech being played: `play_id` is the action that started it (it names its end event)."""

    play_id: str
    track: str
    stream: PcmStream
    # Where the stream started in the track, for the position a new owner continues from.
    start_s: float = 0.0

    @property
    def position_s(self) -> float:
        return self.start_s + self.stream.frames * FRAME_S


EndHandler = Callable[[Playing, EndReason], None]


def opus_encoder() -> discord.opus.Encoder:
    """libopus through discord.py's binding, loaded once for the process (Debian's libopus0)."""
    if not discord.opus.is_loaded() and not discord.opus._load_default():
        raise RuntimeError("libopus is not installed (Debian: libopus0)")
    return discord.opus.Encoder()


class Player:
    def __init__(self, sink: AudioSink, on_end: EndHandler) -> None:
        self._sink = sink
        self._on_end = on_end
        self._encoder = opus_encoder()
        self.track: Playing | None = None
        self.speech: Playing | None = None
        self.paused = False
        self.volume = FULL_VOLUME
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Frames handed to the sink, for the benchmark's pacing figures.
        self.sent = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="voice-player")

    async def close(self, reason: EndReason | None) -> None:
        """Stop everything: what was playing ends with `reason` (a leave), or unreported with None (the bot
        moves to another runner, which continues it)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._cut_speech(reason)
        await self._cut_track(reason)

    # commands

    async def play(self, playing: Playing) -> None:
        """A new track; one still playing is cut as skipped."""
        await self._cut_track("skipped")
        self.track, self.paused = playing, False
        self._changed.set()

    async def say(self, speech: Playing) -> None:
        """A speech over the music; one still being said is cut as skipped."""
        await self._cut_speech("skipped")
        self.speech = speech
        self._changed.set()

    async def skip(self) -> None:
        await self._cut_track("skipped")

    async def stop(self) -> None:
        await self._cut_track("stopped")

    def pause(self) -> None:
        self.paused = True
        self._changed.set()

    def resume(self) -> None:
        self.paused = False
        self._changed.set()

    def set_volume(self, volume: int) -> None:
        self.volume = volume

    async def _cut_track(self, reason: EndReason | None) -> None:
        playing, self.track = self.track, None
        await self._cut(playing, reason)

    async def _cut_speech(self, reason: EndReason | None) -> None:
        playing, self.speech = self.speech, None
        await self._cut(playing, reason)

    async def _cut(self, playing: Playing | None, reason: EndReason | None) -> None:
        if playing is None:
            return
        await playing.stream.close()
        if reason is not None:
            self._on_end(playing, reason)
        self._changed.set()

    # sending

    def _current(self) -> Playing | None:
        if self.speech is not None:
            return self.speech
        return None if self.paused else self.track

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        schedule = FrameSchedule(loop.time())
        speaking = False
        while True:
            playing = self._current()
            if playing is None:
                if speaking:
                    await self._trail_off(schedule)
                    speaking = False
                    continue  # a command may have come meanwhile
                self._changed.clear()
                await self._changed.wait()
                continue
            pcm = await playing.stream.read_frame()
            if playing is not self._current():
                continue  # cut, paused or talked over while the frame was decoded
            if pcm is None:
                await self._finished(playing)
                continue
            opus = self._encoder.encode(with_volume(pcm, self.volume), len(pcm) // 4)
            if not self._sink.ready:
                await self._sink.wait_ready()
                speaking = False
            if not speaking:
                await self._sink.speaking(True)
                speaking = True
                schedule.restart(loop.time())
            await asyncio.sleep(schedule.wait_s(loop.time()))
            self._sink.send_frame(opus)
            self.sent += 1
            schedule.frame_sent(loop.time())

    async def _trail_off(self, schedule: FrameSchedule) -> None:
        """Five frames of silence, then the speaking flag off."""
        loop = asyncio.get_running_loop()
        for _ in range(SILENCE_FRAMES_AFTER_AUDIO):
            await asyncio.sleep(schedule.wait_s(loop.time()))
            self._sink.send_frame(SILENCE_FRAME)
            schedule.frame_sent(loop.time())
        await self._sink.speaking(False)

    async def _finished(self, playing: Playing) -> None:
        if playing is self.speech:
            self.speech = None
        else:
            self.track = None
        await playing.stream.close()
        if playing.stream.error is not None:
            log.warning("voice: %s failed: %s", playing.track, playing.stream.error)
        self._on_end(playing, "failed" if playing.stream.error is not None else "finished")
