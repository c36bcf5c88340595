"""End-to-end pipeline benchmark: prefix commands ("!queue") posted as a member in the demo world's emulator,
answered by the Mode-1 music bot through gateway -> Kafka -> processors -> Kafka -> gateway -> emulator.

At rising offered rates (each for STEP_S seconds) it measures answered messages/s and p50/p99 latency from
the post to the emulator's record of the answer, stopping at saturation; then the raw aiokafka
produce->consume rate on the same machine as the ceiling. Prints one JSON line at the end.

    .venv/bin/python bench/pipeline.py
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import sys
import time
import uuid
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from deep.settings import REPO_ROOT, get_settings
from emulator.discord import EmulatorControl
from streams.admin import delete_namespace

RATES = (50, 100, 200, 400, 800)
STEP_S = 8.0
DRAIN_S = 10.0
START_TIMEOUT_S = 180.0
RAW_MESSAGES = 50_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def step(control: EmulatorControl, user: str, channel: str, bot: str, rate: int) -> dict[str, Any]:
    """Run `/queue` at `rate` per second for STEP_S, then wait for the answers.

    Slash commands are measured because their answers (interaction callbacks) are exempt from the
    per-token 50 requests/s and have a route of their own per interaction, as on Discord: a message reply
    per command would measure Discord's 5-per-5-s channel limit, not the pipeline."""
    seen = await control.actions()
    since = seen[-1]["seq"] if seen else 0
    posted: dict[str, float] = {}
    count = int(rate * STEP_S)
    start = time.time()
    pending: set[asyncio.Task[None]] = set()

    async def post() -> None:
        sent_at = time.time()
        interaction = await control.invoke_command(bot, user, channel, "queue")
        posted[interaction["id"]] = sent_at

    for n in range(count):
        delay = start + n / rate - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(post())
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    offered_s = time.time() - start
    latencies: list[float] = []
    deadline = time.time() + DRAIN_S
    while time.time() < deadline:
        answers = await control.actions(since=since, bot_id=bot, kind="interaction_response")
        latencies = [
            a["at"] - posted[ref] for a in answers if (ref := a["payload"].get("interaction_id")) in posted
        ]
        if len(latencies) >= count:
            break
        await asyncio.sleep(0.5)
    answered_s = (max(latencies) + offered_s) if latencies else offered_s
    return {
        "offered_per_s": rate,
        "posted_per_s": round(count / offered_s, 1),
        "answered": len(latencies),
        "posted": count,
        "answered_per_s": round(len(latencies) / answered_s, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1) if latencies else None,
    }


async def raw_kafka(bootstrap: str) -> dict[str, Any]:
    """aiokafka produce -> consume of RAW_MESSAGES 200-byte records on a topic of its own."""
    topic = f"b{uuid.uuid4().hex[:8]}.raw"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=256 * 1024)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await producer.start()
    await consumer.start()
    try:
        value = b"x" * 200
        start = time.perf_counter()
        sends = [await producer.send(topic, value) for _ in range(RAW_MESSAGES)]
        await asyncio.gather(*sends)
        produced_s = time.perf_counter() - start
        received = 0
        while received < RAW_MESSAGES:
            for records in (await consumer.getmany(timeout_ms=500, max_records=10_000)).values():
                received += len(records)
        total_s = time.perf_counter() - start
    finally:
        await consumer.stop()
        await producer.stop()
        await admin.delete_topics([topic])
        await admin.close()
    return {
        "produce_per_s": round(RAW_MESSAGES / produced_s),
        "produce_consume_per_s": round(RAW_MESSAGES / total_s),
    }


async def main() -> None:
    settings = get_settings()
    namespace, schema = f"b{uuid.uuid4().hex[:8]}.", f"bench_{uuid.uuid4().hex[:12]}"
    ports = {name: free_port() for name in ("port", "emulator-port", "api-port")}
    argv = [sys.executable, "-m", "demo", "run", "--namespace", namespace, "--schema", schema]
    argv += ["--chat-rate", "0", "--no-sinks", "--work-dir", f"/tmp/{schema}"]
    argv += [arg for name, port in ports.items() for arg in (f"--{name}", str(port))]
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", "OPENAI_API_KEY")}
    demo = await asyncio.create_subprocess_exec(
        *argv, cwd=REPO_ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    steps: list[dict[str, Any]] = []
    try:
        assert demo.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (await asyncio.wait_for(demo.stdout.readline(), START_TIMEOUT_S)).startswith(
            b"[demo] playground"
        ):
            if time.monotonic() > deadline or demo.returncode is not None:
                raise SystemExit("the demo did not start")
        drain = asyncio.create_task(demo.stdout.read())
        async with EmulatorControl(f"http://127.0.0.1:{ports['emulator-port']}") as control:
            world = await control.world()
            guild = world["guilds"][0]
            user = next(u["id"] for u in world["users"] if u["username"] == "aiko")
            channel = next(c["id"] for c in guild["channels"] if c["name"] == "music")
            bot = next(b["id"] for b in world["bots"] if b["username"] == "Music Bot")
            for rate in RATES:
                result = await step(control, user, channel, bot, rate)
                steps.append(result)
                print(orjson.dumps(result).decode(), file=sys.stderr, flush=True)
                if result["answered"] < 0.95 * result["posted"] or result["answered_per_s"] < 0.8 * rate:
                    break  # saturated
    finally:
        demo.send_signal(signal.SIGINT)
        await asyncio.wait_for(demo.wait(), 60)
        await drain
        conn = await asyncpg.connect(settings.postgres_dsn)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
        await delete_namespace(settings.kafka_bootstrap, namespace)
    ceiling = await raw_kafka(settings.kafka_bootstrap)
    best = max(steps, key=lambda s: s["answered_per_s"])
    print(
        orjson.dumps(
            {"pipeline": steps, "max_answered_per_s": best["answered_per_s"], "raw_aiokafka": ceiling}
        ).decode()
    )


if __name__ == "__main__":
    asyncio.run(main())
