"""Voice: how long a spoken reply takes from its text to its first audio packet, how steady the 20 ms frames
go out, and what each concurrent voice connection costs in CPU and memory.

    .venv/bin/python -m bench.voice                      # 1, 10 and 50 connections
    .venv/bin/python -m bench.voice --levels 1 10 --window-s 5

The emulator, with its voice server, runs in its own process; this process holds a fleet of bots and their
voice manager as a runner does (Kafka for forwarded dispatches, Redis for sessions and voice presences).
Latency: a VoiceSpeak through espeak-ng, from the call to the first frame handed to the socket (the emulator
is on the same host). Pacing: every frame's send time on each connection; the jitter is how far an interval
between two frames strays from 20 ms (p99), with the emulator's own RFC 3550 figure next to it. Cost: all
bots' gateway shards are connected first; then 1, 10, 50 voice connections each play a tone, and the CPU
(this process, and the ffmpeg decoders apart) and RSS are measured over a window. The last line printed is
the result as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.gateway_density import (  # noqa: E402
    drop_topic,
    emulator_process,
    gateway_url,
    runner_fleet,
    runner_http,
    settled_rss,
    wait_for_emulator,
)
from emulator.discord import EmulatorControl  # noqa: E402
from gateways.media import media_session  # noqa: E402
from gateways.rest import use_api_base  # noqa: E402
from gateways.sessions import connect_redis  # noqa: E402
from gateways.shard import BotCredentials, ShardState  # noqa: E402
from gateways.voice.manager import Voice, VoiceManager  # noqa: E402
from gateways.voice.pacing import FRAME_S  # noqa: E402
from gateways.voice.rtp import SILENCE_FRAME  # noqa: E402
from gateways.voice.speech import Speech  # noqa: E402
from gateways.voice.store import VoiceStore  # noqa: E402
from models.actions import VoicePlay, VoiceSpeak  # noqa: E402
from models.events import EventEnvelope  # noqa: E402
from settings import get_settings  # noqa: E402
from streams.admin import apply_catalog  # noqa: E402
from streams.catalog import DISCORD_EVENTS  # noqa: E402
from vault.user_keys import user_keys  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
GUILD_BASE, CHANNEL_BASE, BOT_BASE = 1200000000000000000, 1300000000000000000, 1400000000000000000


def world_spec(bots: int) -> dict[str, Any]:
    """One guild with a voice channel per bot."""
    guild_id = str(GUILD_BASE)
    channels = [{"id": str(CHANNEL_BASE + b), "name": f"voice {b}", "type": "voice"} for b in range(bots)]
    spec_bots = [
        {"id": str(BOT_BASE + b), "username": f"dj{b}", "guild_ids": [guild_id]} for b in range(bots)
    ]
    return {
        "users": [],
        "guilds": [{"id": guild_id, "name": "bench", "channels": channels}],
        "bots": spec_bots,
    }


def children() -> list[int]:
    pids: list[int] = []
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as listed:
            pids.extend(int(pid) for pid in listed.read().split())
    return pids


def cpu_s(pid: int | str = "self") -> float:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def pss_of(pid: int) -> int:
    """A process's proportional set size: shared libraries counted once across the decoders, not each time."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return 0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


class SendTimes:
    """Wraps each connection's send_frame to note when every frame left."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}
        # Set by the first frame with audio in it (not the silence a finished speech trails off with).
        self.audio_sent = asyncio.Event()
        self.first_audio: float | None = None

    def watch(self, voice: Voice) -> None:
        if voice.bot.bot_id in self.times:
            return
        sent = self.times.setdefault(voice.bot.bot_id, [])
        original: Callable[[bytes], None] = voice.connection.send_frame

        def send_frame(opus: bytes) -> None:
            now = time.monotonic()
            sent.append(now)
            if opus != SILENCE_FRAME and not self.audio_sent.is_set():
                self.first_audio = now
                self.audio_sent.set()
            original(opus)

        voice.connection.send_frame = send_frame  # type: ignore[method-assign]

    def clear(self) -> None:
        self.audio_sent.clear()
        self.first_audio = None
        for sent in self.times.values():
            sent.clear()

    def jitter_ms(self) -> list[float]:
        """How far each interval between consecutive frames strays from 20 ms."""
        strays: list[float] = []
        for sent in self.times.values():
            strays.extend(abs(b - a - FRAME_S) * 1000 for a, b in itertools.pairwise(sent))
        return strays


def tone_library() -> Path:
    library = Path(tempfile.mkdtemp(prefix="bench-voice-"))
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=600",
         str(library / "tone.ogg")],
        check=True,
    )  # fmt: skip
    return library


async def run(args: argparse.Namespace, base: str, library: Path) -> dict[str, Any]:
    levels = sorted(args.levels)
    bots_needed = max(levels)
    settings = get_settings()
    namespace = f"bench{uuid.uuid4().hex[:6]}."
    await apply_catalog(settings.kafka_bootstrap, namespace, (DISCORD_EVENTS,))
    use_api_base(f"{base}/api/v10")
    redis = connect_redis(settings.redis_url)
    http = runner_http()
    media = media_session(allow_private=False)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=0)
    await producer.start()
    result: dict[str, Any] = {"levels": {}}
    async with EmulatorControl(base) as control, user_keys(settings) as keys:
        await wait_for_emulator(control)
        created = await control.load_world(world_spec(bots_needed))

        async def token_dead(bot: BotCredentials, reason: Any) -> None:
            raise RuntimeError(f"bot {bot.bot_id} token dead: {reason}")

        ends: asyncio.Queue[EventEnvelope] = asyncio.Queue()

        async def publish(envelope: EventEnvelope) -> None:
            ends.put_nowait(envelope)
            await producer.send_and_wait(
                DISCORD_EVENTS.name_in(namespace),
                DISCORD_EVENTS.codec.encode(envelope),
                key=envelope.key.encode(),
            )

        fleet = runner_fleet(base, namespace, http, producer, redis, token_dead, keys)
        voice = VoiceManager(
            fleet=fleet,
            http=http,
            gateway_url=gateway_url(base),
            library_root=library,
            media=media,
            allow_private_media=False,
            speech=Speech(None),
            publish=publish,
            store=VoiceStore(redis, namespace),
        )
        fleet.on_voice = voice.dispatched
        tasks = [asyncio.create_task(fleet.run()), asyncio.create_task(voice.run())]
        bots = [
            BotCredentials(bot_id=b["id"], token_id=uuid.uuid4(), token=SecretStr(b["token"]))
            for b in created["bots"]
        ]
        guild_id = str(GUILD_BASE)
        try:
            for bot in bots:
                await fleet.connect(bot)
            deadline = time.monotonic() + 120
            while not all(s.state is ShardState.READY for s in fleet.all_shards()):
                if time.monotonic() > deadline:
                    raise RuntimeError("the bots' gateway shards did not all become ready")
                await asyncio.sleep(0.2)
            sends = SendTimes()

            # Latency of speech: the first bot joins, then says a sentence a few times.
            first = bots[0]
            joined = await voice.join(first, guild_id, str(CHANNEL_BASE))
            sends.watch(joined)
            latencies = []
            for attempt in range(args.speeches):
                sends.clear()
                said = VoiceSpeak(
                    action_id=f"bench-speak-{attempt}",
                    bot_id=first.bot_id,
                    guild_id=guild_id,
                    channel_id=str(CHANNEL_BASE),
                    text="Hello everyone, the next song starts in a moment.",
                )
                began = time.monotonic()
                await voice.perform(guild_id, said, first)
                await sends.audio_sent.wait()
                assert sends.first_audio is not None
                latencies.append(sends.first_audio - began)
                await ends.get()  # the speech said to its end
            result["speech_to_first_packet_ms"] = {
                "median": round(statistics.median(latencies) * 1000, 1),
                "max": round(max(latencies) * 1000, 1),
                "runs": len(latencies),
            }

            await asyncio.sleep(1)
            baseline_rss = settled_rss()
            playing = 0
            for level in levels:
                for index in range(playing, level):
                    bot = bots[index]
                    play = VoicePlay(
                        action_id=f"bench-play-{index}",
                        bot_id=bot.bot_id,
                        guild_id=guild_id,
                        channel_id=str(CHANNEL_BASE + index),
                        command="play",
                        track="tone",
                    )
                    await voice.perform(guild_id, play, bot)
                    sends.watch(voice.voices[(bot.bot_id, guild_id)])
                playing = level
                await asyncio.sleep(2)  # every decoder started and its pipe filled
                sends.clear()
                decoders = children()
                process_before, decoders_before = cpu_s(), sum(cpu_s(pid) for pid in decoders)
                began = time.monotonic()
                await asyncio.sleep(args.window_s)
                elapsed = time.monotonic() - began
                process_cpu = (cpu_s() - process_before) / elapsed
                decoders_cpu = (sum(cpu_s(pid) for pid in decoders) - decoders_before) / elapsed
                strays = sends.jitter_ms()
                frames = sum(len(sent) for sent in sends.times.values())
                rss = settled_rss()
                received = await control.voice_received(guild_id)
                emulator_jitter = [r["jitter_ms"] for r in received["recordings"] if r["packets"]]
                result["levels"][str(level)] = {
                    "frames_per_s": round(frames / elapsed, 1),
                    "expected_frames_per_s": round(level / FRAME_S, 1),
                    "jitter_p99_ms": round(percentile(strays, 0.99), 2),
                    "jitter_p50_ms": round(percentile(strays, 0.50), 2),
                    "emulator_rfc3550_jitter_ms_mean": round(statistics.mean(emulator_jitter), 2)
                    if emulator_jitter
                    else None,
                    "cpu_per_connection_pct": round(process_cpu / level * 100, 2),
                    "ffmpeg_cpu_per_connection_pct": round(decoders_cpu / level * 100, 2),
                    "rss_per_connection_kb": round((rss - baseline_rss) / level / 1024, 1),
                    "ffmpeg_pss_per_connection_kb": round(
                        sum(pss_of(pid) for pid in decoders) / level / 1024, 1
                    ),
                }
        finally:
            await voice.close()
            for task in tasks:
                task.cancel()
            await fleet.close()
            await producer.stop()
            await media.close()
            await http.close()
            await redis.aclose()
            await drop_topic(settings.kafka_bootstrap, DISCORD_EVENTS.name_in(namespace))
    result["cpu_count"] = os.cpu_count()
    result["load_average"] = [round(load, 2) for load in os.getloadavg()]
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--window-s", type=float, default=5.0, help="how long each level is measured")
    parser.add_argument("--speeches", type=int, default=5)
    arguments = parser.parse_args()
    with emulator_process() as emulator_base:
        outcome = asyncio.run(run(arguments, emulator_base, tone_library()))
    print(json.dumps(outcome))
