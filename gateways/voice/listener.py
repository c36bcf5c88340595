"""A listening agent's ears on one voice connection: each speaker's Opus decoded, cut into utterances
(hearing.Utterances) and recognized in the runner's recognition process.

Recognition is CPU-bound (seconds of decoding per utterance on a busy core), so it runs in one separate worker
process shared by all of a runner's listeners, never on the event loop that paces playback; at most
`MAX_PENDING` utterances wait for it: beyond that an utterance is dropped (and logged) rather than queued
without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import cache

import numpy as np
from discord.opus import Decoder, OpusError

from gateways.voice.hearing import Recognizer, Utterance, Utterances, grammar
from gateways.voice.rtp import SILENCE_FRAME

log = logging.getLogger(__name__)

# Discord sends no packets while a member is silent: this long without any ends an utterance.
UTTERANCE_GAP_S = 0.6
UTTERANCE_MAX_S = 15.0
MAX_PENDING = 4

# (speaker's user id, what was said): called on the event loop for every non-empty transcript.
TranscriptHandler = Callable[[str, str], None]


@cache
def _recognizer(jsgf: str) -> Recognizer:
    return Recognizer(jsgf)


def _transcribe(jsgf: str, pcm: np.ndarray) -> str:
    """In the recognition process: one recognizer per grammar, kept for the next utterance."""
    return _recognizer(jsgf).recognize(pcm)


class RecognitionPool:
    """The runner's one recognition process (started with the first utterance) and its bound."""

    def __init__(self) -> None:
        self._executor: ProcessPoolExecutor | None = None
        self._pending = 0

    async def transcribe(self, jsgf: str, pcm: np.ndarray) -> str | None:
        """The words said, or None when too many utterances are already waiting."""
        if self._pending >= MAX_PENDING:
            return None
        if self._executor is None:
            # spawn, not fork: a forked copy of a running event loop and its sockets is unsafe.
            self._executor = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, _transcribe, jsgf, pcm)
        finally:
            self._pending -= 1

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


class Listener:
    def __init__(self, names: list[str], pool: RecognitionPool, on_transcript: TranscriptHandler) -> None:
        self.names = names
        self._jsgf = grammar(names)
        self._pool = pool
        self._on_transcript = on_transcript
        self._utterances = Utterances(UTTERANCE_GAP_S, UTTERANCE_MAX_S)
        self._decoders: dict[str, Decoder] = {}
        self._task: asyncio.Task[None] | None = None
        self._recognizing: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch_gaps())

    async def close(self) -> None:
        task, self._task = self._task, None
        for pending in [task, *self._recognizing]:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending

    def frame(self, user_id: str, opus: bytes) -> None:
        """One received frame; silence frames add nothing, so the gap after speech starts at its end."""
        if opus == SILENCE_FRAME:
            return
        decoder = self._decoders.setdefault(user_id, Decoder())
        try:
            pcm = np.frombuffer(decoder.decode(opus, fec=False), dtype=np.int16).reshape(-1, 2)
        except OpusError:
            return
        for utterance in self._utterances.add(user_id, pcm, asyncio.get_running_loop().time()):
            self._recognize(utterance)

    async def _watch_gaps(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(UTTERANCE_GAP_S / 4)
            for utterance in self._utterances.due(loop.time()):
                self._recognize(utterance)

    def _recognize(self, utterance: Utterance) -> None:
        task = asyncio.get_running_loop().create_task(self._transcript(utterance))
        self._recognizing.add(task)
        task.add_done_callback(self._recognizing.discard)

    async def _transcript(self, utterance: Utterance) -> None:
        text = await self._pool.transcribe(self._jsgf, utterance.pcm)
        if text is None:
            log.warning("voice: recognition is behind, an utterance of %s was dropped", utterance.user_id)
        elif text:
            self._on_transcript(utterance.user_id, text)
