"""Listening: what members say in a voice channel, cut into utterances and recognized as text.

Received Opus frames are decoded per speaker (48 kHz stereo); an utterance ends when a speaker's packets
stop for `gap_s` (Discord sends nothing during silence, so a gap is the end of speech) or reach `max_s`.
Recognition is pocketsphinx's packaged en-us model with a grammar, not its large-vocabulary model: on
synthetic speech the large model gets almost no word right, a grammar of "[name] phrase [name]" built from
the agent's name and command phrases gets nearly all (bench/listen.py measures it). Speech outside the
grammar comes out as the nearest phrase or nothing.

Pure except `Recognizer.recognize`, which runs the decoder (CPU-bound: callers run it off the event loop).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from pocketsphinx import Decoder

RECEIVED_RATE = 48_000
RECOGNIZER_RATE = 16_000
# Phrases an agent is addressed with besides its name; the grammar is these, optionally framed by the name.
COMMAND_PHRASES = (
    "what time is it",
    "tell me a joke",
    "play some music",
    "hello",
    "stop",
    "skip this song",
    "how are you",
    "what is the weather",
    "good morning",
    "thanks",
    "say hello",
    "who are you",
)
# The acoustic model's features take the log of the signal's energy: digital silence (exact zeros), which
# Discord's silence frames decode to, throws them off. A faint noise floor (about -60 dBFS) keeps them sane.
_NOISE_FLOOR = 30.0
_PAD_S = 0.5
_WORD = re.compile(r"^[a-z']+$")


@dataclass
class _Speech:
    chunks: list[np.ndarray] = field(default_factory=list)
    samples: int = 0
    last_s: float = 0.0


@dataclass(frozen=True)
class Utterance:
    user_id: str
    # 48 kHz stereo int16 samples, shape (n, 2).
    pcm: np.ndarray


class Utterances:
    """Per-speaker buffers; `add` and `due` hand back the utterances that ended."""

    def __init__(self, gap_s: float, max_s: float) -> None:
        if gap_s <= 0 or max_s <= gap_s:
            raise ValueError("gap_s must be positive and max_s above it")
        self.gap_s = gap_s
        self.max_samples = int(max_s * RECEIVED_RATE)
        self._speech: dict[str, _Speech] = {}

    def add(self, user_id: str, pcm: np.ndarray, now_s: float) -> list[Utterance]:
        speech = self._speech.setdefault(user_id, _Speech())
        speech.chunks.append(pcm)
        speech.samples += len(pcm)
        speech.last_s = now_s
        if speech.samples >= self.max_samples:
            return [self._take(user_id)]
        return []

    def due(self, now_s: float) -> list[Utterance]:
        """The utterances of speakers silent for `gap_s` or longer."""
        ended = [user for user, speech in self._speech.items() if now_s - speech.last_s >= self.gap_s]
        return [self._take(user) for user in ended]

    def _take(self, user_id: str) -> Utterance:
        speech = self._speech.pop(user_id)
        return Utterance(user_id, np.concatenate(speech.chunks).reshape(-1, 2))


def recognizer_audio(pcm: np.ndarray) -> bytes:
    """48 kHz stereo int16 → 16 kHz mono int16 bytes, padded with and laid over a faint noise floor."""
    mono = pcm.astype(np.float64).mean(axis=1)
    # 48 kHz to 16 kHz: average each three samples (a box low-pass) and keep one.
    usable = len(mono) - len(mono) % 3
    down = mono[:usable].reshape(-1, 3).mean(axis=1)
    pad = np.zeros(int(_PAD_S * RECOGNIZER_RATE))
    framed = np.concatenate([pad, down, pad])
    noise = np.random.default_rng(len(framed)).normal(0.0, _NOISE_FLOOR, len(framed))
    return bytes(np.clip(framed + noise, -32768, 32767).astype(np.int16).tobytes())


def grammar(names: Iterable[str], phrases: Iterable[str] = COMMAND_PHRASES) -> str:
    """A JSGF grammar: one of `phrases`, optionally before and after one of `names` (lowercased; names the
    dictionary cannot spell word by word are left out)."""
    spoken = sorted({n.lower() for n in names if all(_WORD.match(w) for w in n.lower().split())})
    alternatives = " | ".join(phrases)
    rules = [f"public <utterance> = {alternatives};"]
    if spoken:
        rules = [
            f"<name> = {' | '.join(spoken)};",
            f"public <utterance> = [<name>] ( {alternatives} ) [<name>] | <name>;",
        ]
    return "#JSGF V1.0;\ngrammar utterance;\n" + "\n".join(rules) + "\n"


class Recognizer:
    """pocketsphinx with one grammar; a decoder per thread (they are not thread-safe) built on first use."""

    def __init__(self, jsgf: str) -> None:
        self.jsgf = jsgf
        self._local = threading.local()

    def _decoder(self) -> Decoder:
        decoder: Decoder | None = getattr(self._local, "decoder", None)
        if decoder is None:
            decoder = Decoder(samprate=RECOGNIZER_RATE, loglevel="FATAL")
            decoder.add_jsgf_string("utterance", self.jsgf)
            decoder.activate_search("utterance")
            self._local.decoder = decoder
        return decoder

    def recognize(self, pcm: np.ndarray) -> str:
        """The words said in 48 kHz stereo `pcm`; "" when nothing in the grammar was heard."""
        decoder = self._decoder()
        decoder.start_utt()
        decoder.process_raw(recognizer_audio(pcm), full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        return hypothesis.hypstr if hypothesis is not None else ""
