"""Listening: word accuracy of speech recognition on a dozen espeak-ng phrases addressed to Luna.

    .venv/bin/python -m bench.listen

Each phrase is synthesized by espeak-ng (en-us), decoded to 48 kHz stereo, sent through Opus 20 ms frames
as a member's voice is, and recognized twice: with the agent's grammar (gateways/voice/hearing.py) and with
pocketsphinx's default large-vocabulary language model. Word accuracy is 1 - (word edit distance / words
said). The last line printed is the result as JSON.
"""

from __future__ import annotations

import json
import subprocess
import time

import numpy as np
from discord.opus import Decoder as OpusDecoder
from discord.opus import Encoder as OpusEncoder
from pocketsphinx import Decoder

from gateways.voice.hearing import RECOGNIZER_RATE, Recognizer, grammar, recognizer_audio

PHRASES = (
    "luna what time is it",
    "luna tell me a joke",
    "luna play some music",
    "hello luna",
    "luna stop",
    "luna skip this song",
    "luna how are you",
    "luna what is the weather",
    "luna good morning",
    "thanks luna",
    "luna say hello",
    "luna who are you",
)
FRAME_BYTES = 960 * 2 * 2


def espeak_pcm(text: str) -> bytes:
    """`text` said by espeak-ng (en-us) as 48 kHz stereo little-endian int16."""
    wav = subprocess.run(
        ["espeak-ng", "-v", "en-us", "-s", "140", "--stdout"],
        input=text.encode(),
        capture_output=True,
        check=True,
    ).stdout
    return subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", "-", "-ar", "48000", "-ac", "2", "-f", "s16le", "-"],
        input=wav,
        capture_output=True,
        check=True,
    ).stdout


def spoken(text: str) -> np.ndarray:
    """`text` as a member's voice arrives: espeak-ng, 48 kHz stereo, through Opus and back."""
    pcm = espeak_pcm(text)
    pcm += bytes(-len(pcm) % FRAME_BYTES)
    encoder, decoder = OpusEncoder(), OpusDecoder()
    frames = [
        decoder.decode(encoder.encode(pcm[i : i + FRAME_BYTES], 960), fec=False)
        for i in range(0, len(pcm), FRAME_BYTES)
    ]
    return np.frombuffer(b"".join(frames), dtype=np.int16).reshape(-1, 2)


def word_errors(said: list[str], heard: list[str]) -> int:
    """Levenshtein distance over words."""
    row = list(range(len(heard) + 1))
    for i, word in enumerate(said, 1):
        previous, row[0] = row[0], i
        for j, other in enumerate(heard, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (word != other))
    return row[-1]


def accuracy(transcripts: list[str]) -> float:
    errors = sum(word_errors(p.split(), t.split()) for p, t in zip(PHRASES, transcripts, strict=True))
    return 1 - errors / sum(len(p.split()) for p in PHRASES)


def large_model(pcm: np.ndarray, decoder: Decoder) -> str:
    decoder.start_utt()
    decoder.process_raw(recognizer_audio(pcm), full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return hypothesis.hypstr if hypothesis is not None else ""


def main() -> None:
    audio = [spoken(p) for p in PHRASES]
    recognizer = Recognizer(grammar(["Luna"]))
    started = time.perf_counter()
    with_grammar = [recognizer.recognize(pcm) for pcm in audio]
    grammar_s = time.perf_counter() - started
    default_decoder = Decoder(samprate=RECOGNIZER_RATE, loglevel="FATAL")
    with_large_model = [large_model(pcm, default_decoder) for pcm in audio]
    for phrase, heard in zip(PHRASES, with_grammar, strict=True):
        print(f"{phrase!r} -> {heard!r}")
    speech_s = sum(len(pcm) for pcm in audio) / 48_000
    print(
        json.dumps(
            {
                "phrases": len(PHRASES),
                "word_accuracy_grammar": round(accuracy(with_grammar), 3),
                "word_accuracy_default_lm": round(accuracy(with_large_model), 3),
                "name_heard_grammar": sum("luna" in t.split() for t in with_grammar),
                "grammar_real_time_factor": round(grammar_s / speech_s, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
