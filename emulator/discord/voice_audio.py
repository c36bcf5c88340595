"""What the voice server received, kept per (guild, channel, user) and read back as audio measurements.

Opus payloads are decoded with libopus (discord.py's binding) into 48 kHz stereo PCM; the report gives
packet counts, the duration by decoded samples and by RTP timestamps, the RMS level (1.0 = full scale),
the dominant frequency (FFT of the mono mix), RFC 3550 inter-arrival jitter, the largest gap between
arrivals, RTP sequence numbers skipped, and the speaking flags the client sent.
"""

from __future__ import annotations

import itertools
from collections import Counter, deque
from dataclasses import dataclass

import numpy as np
from discord.opus import Decoder, OpusError

from .world import Json

SAMPLE_RATE = 48_000
CHANNELS = 2
_FULL_SCALE = 32768.0


@dataclass(frozen=True)
class ReceivedFrame:
    arrival_s: float
    sequence: int
    timestamp: int
    opus: bytes
    # True when the frame came end-to-end encrypted (DAVE) and was opened by the server's member.
    e2ee: bool


class Recording:
    """One user's audio in one channel, across its connections (a reconnect gets a new SSRC); the last
    `frames_kept` frames are kept, the counts go on past them."""

    def __init__(self, guild_id: str, channel_id: str, user_id: str, frames_kept: int) -> None:
        self.guild_id = guild_id
        self.channel_id = channel_id
        self.user_id = user_id
        self.ssrcs: list[int] = []
        self.frames: deque[ReceivedFrame] = deque(maxlen=frames_kept)
        self.packets = 0
        self.speaking: list[int] = []
        self.rejected: Counter[str] = Counter()

    def add(self, frame: ReceivedFrame) -> None:
        self.packets += 1
        self.frames.append(frame)

    def pcm(self) -> np.ndarray:
        """The kept frames decoded: int16 samples, shape (n, 2), 48 kHz."""
        samples, _ = decode(list(self.frames))
        return samples


def decode(frames: list[ReceivedFrame]) -> tuple[np.ndarray, int]:
    """The frames' audio as int16 samples, shape (n, 2), decoded in order by one decoder, and how many
    frames libopus refused (they add no samples)."""
    decoder = Decoder()
    chunks: list[np.ndarray] = []
    undecodable = 0
    for frame in frames:
        try:
            chunks.append(np.frombuffer(decoder.decode(frame.opus, fec=False), dtype=np.int16))
        except OpusError:
            undecodable += 1
    if not chunks:
        return np.zeros((0, CHANNELS), dtype=np.int16), undecodable
    return np.concatenate(chunks).reshape(-1, CHANNELS), undecodable


def lost_packets(frames: list[ReceivedFrame]) -> int:
    """RTP sequence numbers skipped between consecutive frames (16-bit wrap allowed)."""
    return sum(
        ((b.sequence - a.sequence) & 0xFFFF) - 1
        for a, b in itertools.pairwise(frames)
        if b.sequence != a.sequence
    )


def dominant_frequency(mono: np.ndarray) -> float | None:
    """The strongest frequency (Hz) of a signal, DC excluded; None for silence or too short a signal."""
    if len(mono) < 2 or not np.any(mono):
        return None
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(len(mono))))
    spectrum[0] = 0.0
    peak = int(np.argmax(spectrum))
    return float(peak * SAMPLE_RATE / len(mono))


def jitter_ms(frames: list[ReceivedFrame]) -> float:
    """RFC 3550 interarrival jitter: a running mean of how much each packet's spacing in arrival time
    differs from its spacing in RTP time."""
    jitter = 0.0
    for previous, current in itertools.pairwise(frames):
        media_gap = ((current.timestamp - previous.timestamp) & 0xFFFF_FFFF) / SAMPLE_RATE
        difference = (current.arrival_s - previous.arrival_s) - media_gap
        jitter += (abs(difference) - jitter) / 16
    return jitter * 1000


def timestamp_duration_s(frames: list[ReceivedFrame], last_frame_samples: int) -> float:
    """From the first frame's RTP timestamp to the end of the last frame (32-bit wrap allowed)."""
    if not frames:
        return 0.0
    span = (frames[-1].timestamp - frames[0].timestamp) & 0xFFFF_FFFF
    return (span + last_frame_samples) / SAMPLE_RATE


def report(recording: Recording) -> Json:
    frames = list(recording.frames)
    pcm, undecodable = decode(frames)
    mono = pcm.astype(np.float64).mean(axis=1) / _FULL_SCALE
    last_samples = (
        Decoder.packet_get_nb_frames(frames[-1].opus) * Decoder.packet_get_samples_per_frame(frames[-1].opus)
        if frames
        else 0
    )
    gaps = np.diff([f.arrival_s for f in frames]) if len(frames) > 1 else np.zeros(0)
    return {
        "guild_id": recording.guild_id,
        "channel_id": recording.channel_id,
        "user_id": recording.user_id,
        "ssrcs": recording.ssrcs,
        "packets": recording.packets,
        "frames_kept": len(frames),
        "e2ee_frames": sum(f.e2ee for f in frames),
        "undecodable_frames": undecodable,
        "lost_packets": lost_packets(frames),
        "duration_s": len(pcm) / SAMPLE_RATE,
        "timestamp_duration_s": timestamp_duration_s(frames, last_samples),
        "rms": float(np.sqrt(np.mean(mono**2))) if len(mono) else 0.0,
        "dominant_hz": dominant_frequency(mono),
        "jitter_ms": jitter_ms(frames),
        "max_gap_ms": float(gaps.max() * 1000) if len(gaps) else 0.0,
        "speaking": recording.speaking,
        "rejected": dict(recording.rejected),
    }
