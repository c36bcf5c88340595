"""Benchmark of the inference worker's own overhead with 1,000 requests in flight.

The OpenAI-compatible server answers every request after --latency seconds (1.5 by default) and runs in a
process of its own; so do the workers (`python -m inference.cli`, --workers of them in one
group), against the real Kafka and Redis. This process keeps --in-flight requests outstanding on the premium
lane (a new one is produced as each result arrives) and reads the results.

Figures (final JSON line):
- overhead_ms p50/p99/max: end-to-end time (request produced -> result consumed, both here) minus the
  server's latency: Kafka both ways plus everything the worker does.
- worker_overhead_ms p50/p99: the worker's own measure (result.latency_ms, from taking the request to the
  result being ready) minus the server's latency: Redis, the pool, the HTTP client.
- worker/server CPU per request, worker RSS (now and peak), lost requests (no result), duplicates, and the
  machine's CPU pressure (other load on a shared machine skews every figure).

Run: .venv/bin/python -m bench.inference [--requests 3000] [--in-flight 1000] [--latency 1.5] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import sys
import time
from pathlib import Path
from uuid import UUID, uuid4

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio import Redis

from models.decisions import Priority
from models.inference import ChatMessage, InferenceRequest, ReplyTarget
from models.tiers import TIERS, InferenceLane, Tier
from settings import get_settings
from settings.runtime import settle_garbage_collector
from streams.admin import apply_catalog
from streams.catalog import DEAD_LETTERS, INFERENCE_LANES, INFERENCE_RESULTS, OWNER_NOTIFICATIONS

TOPICS = (
    *INFERENCE_LANES.values(),
    INFERENCE_RESULTS,
    OWNER_NOTIFICATIONS,
    *(DEAD_LETTERS[spec.name] for spec in INFERENCE_LANES.values()),
)
LANE = InferenceLane.premium
REPO_ROOT = Path(__file__).resolve().parent.parent
SYSTEM_PROMPT = "You are Luna, a cheerful gamer who loves JRPGs and anime. " * 20


def request(owner: UUID, index: int) -> InferenceRequest:
    return InferenceRequest(
        request_id=f"bench-{uuid4().hex}",
        event_id=f"event-{index}",
        deployment_id=uuid4(),
        agent_id=uuid4(),
        owner_id=owner,
        tier=Tier.enterprise,
        lane=TIERS[Tier.enterprise].lane,
        priority=Priority.medium,
        model="bench-model",
        messages=[
            ChatMessage(role="system", content=SYSTEM_PROMPT),
            ChatMessage(role="user", name="Bob", content=f"Bob: message number {index}, how are you today?"),
        ],
        max_tokens=128,
        target=ReplyTarget(
            bot_id="900", guild_id=str(1000 + index % 500), channel_id="200", message_id=str(index + 1)
        ),
    )


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def rss_mb(pid: int) -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def cpu_s(pid: int) -> float:
    """User plus system CPU time the process has used."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


async def spawn(*args: str) -> asyncio.subprocess.Process:
    """Run a module of the repository in a process of its own."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        *args,
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO_ROOT,
    )


async def main(args: argparse.Namespace) -> dict[str, object]:
    settings = get_settings()
    bootstrap = settings.kafka_bootstrap
    namespace = f"bench{uuid4().hex[:6]}."
    key_prefix = f"bench:inference:{uuid4().hex[:6]}:"
    group = f"bench-{uuid4().hex[:6]}"
    await apply_catalog(bootstrap, namespace, TOPICS)
    server = await spawn("emulator.openai", "--latency", str(args.latency))
    assert server.stdout is not None
    base_url = orjson.loads(await server.stdout.readline())["base_url"]
    # Room for every request in flight: what is measured is the worker, not a queue in front of the server.
    capacity = str(args.in_flight * 2)
    workers = [
        await spawn(
            "inference.cli",
            *("--endpoints", f"bench={base_url}|*|{capacity}", "--namespace", namespace, "--group", group),
            *("--key-prefix", key_prefix, "--max-in-flight", capacity),
        )
        for _ in range(args.workers)
    ]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    consumer = AIOKafkaConsumer(
        INFERENCE_RESULTS.name_in(namespace), bootstrap_servers=bootstrap, group_id=None, fetch_max_wait_ms=5
    )
    await producer.start()
    await consumer.start()
    lane_topic = INFERENCE_LANES[LANE].name_in(namespace)
    owner = uuid4()
    sent: dict[str, float] = {}
    received: dict[str, float] = {}
    worker_latency_ms: list[float] = []
    duplicates = 0
    slots = asyncio.Semaphore(args.in_flight)
    all_answered = asyncio.Event()
    expected: set[str] = set()

    async def read_results() -> None:
        nonlocal duplicates
        while True:
            for records in (await consumer.getmany(timeout_ms=50)).values():
                now = time.monotonic()
                for record in records:
                    # orjson alone: this process's CPU is not what is measured.
                    result = orjson.loads(record.value)
                    request_id = result["request_id"]
                    if request_id in received:
                        duplicates += 1
                        continue
                    received[request_id] = now
                    slots.release()
                    if not result["fallback"]:
                        worker_latency_ms.append(result["latency_ms"])
            if expected and expected <= received.keys():
                all_answered.set()

    async def run(requests: list[InferenceRequest]) -> None:
        """Keep `in_flight` requests outstanding until every one is answered."""
        encoded = [(r.request_id, INFERENCE_LANES[LANE].codec.encode(r)) for r in requests]
        sent.clear()
        received.clear()
        worker_latency_ms.clear()
        all_answered.clear()
        expected.clear()
        expected.update(request_id for request_id, _ in encoded)
        ramp_start = time.monotonic()
        for index, (request_id, value) in enumerate(encoded):
            await slots.acquire()
            if index < args.in_flight:
                # Ramp up over one server latency, so requests come back spread out, not in one burst; on a
                # schedule, as sleep after sleep drifts (1,000 sleeps of 1.5 ms took over 2 s) and the slots
                # freed meanwhile were then refilled in one burst.
                await asyncio.sleep(ramp_start + index * args.latency / args.in_flight - time.monotonic())
            sent[request_id] = time.monotonic()
            await producer.send(lane_topic, value, key=request_id.encode())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_answered.wait(), timeout=args.latency * 10 + 60)

    reader = asyncio.create_task(read_results())
    try:
        await consumer.seek_to_end()
        # Warm up: the workers have joined their group and opened a connection per request in flight.
        await run([request(owner, args.requests + i) for i in range(args.in_flight)])
        # This process reads results and produces requests on time only if its collector does not stall it.
        settle_garbage_collector()
        cpu_before = sum(cpu_s(w.pid) for w in workers), cpu_s(server.pid)
        started = time.monotonic()
        await run([request(owner, i) for i in range(args.requests)])
        elapsed = time.monotonic() - started
        worker_cpu = sum(cpu_s(w.pid) for w in workers) - cpu_before[0]
        server_cpu = cpu_s(server.pid) - cpu_before[1]
        memory = [rss_mb(w.pid) for w in workers]
    finally:
        reader.cancel()
        for process in (*workers, server):
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        await asyncio.gather(*(process.wait() for process in (*workers, server)))
        await producer.stop()
        await consumer.stop()
        await cleanup(bootstrap, namespace, key_prefix)

    latency_ms = args.latency * 1000
    overhead = [(received[rid] - sent[rid]) * 1000 - latency_ms for rid in expected if rid in received]
    worker_overhead = [value - latency_ms for value in worker_latency_ms]
    return {
        "bench": "inference",
        "requests": args.requests,
        "in_flight": args.in_flight,
        "workers": args.workers,
        "server_latency_s": args.latency,
        "throughput_per_s": round(len(overhead) / elapsed, 1),
        "overhead_ms_p50": _ms(statistics.median(overhead) if overhead else None),
        "overhead_ms_p99": _ms(percentile(overhead, 0.99)),
        "overhead_ms_max": _ms(max(overhead) if overhead else None),
        "worker_overhead_ms_p50": _ms(statistics.median(worker_overhead) if worker_overhead else None),
        "worker_overhead_ms_p99": _ms(percentile(worker_overhead, 0.99)),
        "worker_cpu_ms_per_request": round(worker_cpu * 1000 / args.requests, 3),
        "server_cpu_ms_per_request": round(server_cpu * 1000 / args.requests, 3),
        "worker_rss_mb": round(sum(rss for rss, _ in memory), 1),
        "worker_peak_rss_mb": round(sum(peak for _, peak in memory), 1),
        "lost": len(expected - received.keys()),
        "duplicates": duplicates,
        "cpu_count": os.cpu_count(),
        # Share of time runnable tasks waited for a CPU on this machine (Linux PSI): other load skews figures.
        "cpu_pressure_avg60": cpu_pressure(),
    }


def _ms(value: float | None) -> float | None:
    return None if value is None or value != value else round(value, 2)


def cpu_pressure() -> float | None:
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return None
    return float(dict(part.split("=") for part in first.split()[1:])["avg60"])


async def cleanup(bootstrap: str, namespace: str, key_prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([spec.name_in(namespace) for spec in TOPICS])
    finally:
        await admin.close()
    redis = Redis.from_url(get_settings().redis_url)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{key_prefix}*", count=1000)]
        for start in range(0, len(keys), 1000):
            await redis.delete(*keys[start : start + 1000])
    finally:
        await redis.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--in-flight", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=1.5)
    parser.add_argument("--workers", type=int, default=1, help="worker processes in one consumer group")
    figures = asyncio.run(main(parser.parse_args()))
    print(orjson.dumps(figures).decode())
