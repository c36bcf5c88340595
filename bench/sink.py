"""Sink throughput: rows/s from Kafka into the embedded ClickHouse engine, and the raw insert_arrow ceiling.

    .venv/bin/python -m bench.sink                # 1,000,000 events
    .venv/bin/python -m bench.sink --rows 300000 --flush-rows 50000

Produces N MESSAGE_CREATE envelopes to a fresh namespace, then runs the events sink exactly as `deep sinks`
does (consumer group, codec, Arrow batches, plan commit, insert with a deduplication token, offset commit,
the per-minute rollup view) and times it until the group has committed every record:
- sink_rows_per_s: from the first commit to the last (steady state);
- sink_rows_per_s_from_start: including joining the group and the first batch;
- sink_cpu_us_per_row: the process's CPU time per row (all threads, the engine's too), which varies less
  than the rates on a shared machine.
The engine lives in a temporary directory. Then it inserts a ready-made Arrow batch of the same rows with
insert_arrow alone: the ceiling the sink path could reach. The last line printed is the result as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from infra.stack.clickhouse import get_clickhouse_client  # noqa: E402
from settings import Settings, load_settings  # noqa: E402
from settings.runtime import settle_garbage_collector  # noqa: E402
from sinks.clickhouse.schema import migrate  # noqa: E402
from sinks.consumer import SinkOptions, TableWriter, TopicSink, sink_group  # noqa: E402
from sinks.tables import EVENTS  # noqa: E402
from streams.admin import apply_catalog  # noqa: E402
from streams.catalog import DISCORD_EVENTS, dead_letter_topic  # noqa: E402
from vault.user_keys import user_keys  # noqa: E402

DATABASE = "bench"
TARGET_ROWS_PER_S = 100_000


def envelope(n: int, start: datetime) -> bytes:
    """One MESSAGE_CREATE envelope as the gateways write it (built as JSON: the models would dominate)."""
    guild = str(100_000 + n % 500)
    return orjson.dumps(
        {
            "schema_version": 1,
            "event_id": f"bench-{n}",
            "bot_id": str(900_000 + n % 50),
            "shard_id": 0,
            "guild_id": guild,
            "channel_id": str(200_000 + n % 2000),
            "type": "MESSAGE_CREATE",
            "sequence": n,
            "received_at": (start + timedelta(microseconds=100 * n)).isoformat(),
            "data": {
                "id": str(10**17 + n),
                "channel_id": str(200_000 + n % 2000),
                "guild_id": guild,
                "author": {"id": str(300_000 + n % 10_000), "username": "someone", "bot": False},
                "content": "a message of ordinary length, about as long as people write " * (1 + n % 3),
                "mentions": [],
                "timestamp": start.isoformat(),
            },
        }
    )


async def produce(settings: Settings, topic: str, rows: int, start: datetime) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, linger_ms=20, max_batch_size=1024 * 1024, acks=1
    )
    await producer.start()
    try:
        for n in range(rows):
            await producer.send(topic, envelope(n, start), key=str(n % 500).encode())
        await producer.flush()
    finally:
        await producer.stop()


async def committed_total(admin: AIOKafkaAdminClient, group: str) -> int:
    offsets = await admin.list_consumer_group_offsets(group)
    return sum(meta.offset for meta in offsets.values() if meta.offset >= 0)


async def run_sink(settings: Settings, rows: int, options: SinkOptions) -> tuple[float, float, int]:
    """Seconds from start to the last commit, seconds from the first commit to the last, and rows then."""
    client = get_clickhouse_client(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await producer.start()
    # The records here carry no sealed part: the keys are asked nothing.
    async with user_keys(settings) as keys:
        sink = TopicSink(
            DISCORD_EVENTS,
            TableWriter(client, DATABASE, EVENTS),
            bootstrap=settings.kafka_bootstrap,
            namespace=settings.topic_namespace,
            producer=producer,
            admin=admin,
            keys=keys,
            options=options,
        )
        group = sink_group(settings.topic_namespace, EVENTS)
        began = time.perf_counter()
        task = asyncio.create_task(sink.run())
        first_commit: tuple[float, int] | None = None
        try:
            while (done := await committed_total(admin, group)) < rows:
                if task.done():
                    task.result()
                if done and first_commit is None:
                    first_commit = (time.perf_counter(), done)
                await asyncio.sleep(0.02)
            ended = time.perf_counter()
        finally:
            sink.stop()
            await task
            await producer.stop()
            await admin.close()
    steady_since, rows_before = first_commit or (began, 0)
    return ended - began, ended - steady_since, rows - rows_before


def insert_ceiling(settings: Settings, start: datetime, batch_rows: int, batches: int = 5) -> float:
    """rows/s of insert_arrow alone, on an Arrow table of the same records built beforehand."""
    client = get_clickhouse_client(settings)
    table = EVENTS.arrow(
        [EVENTS.row(DISCORD_EVENTS.codec.decode(envelope(n, start))) for n in range(batch_rows)]
    )
    began = time.perf_counter()
    for i in range(batches):
        client.insert_arrow(
            EVENTS.table, table, database=DATABASE, settings={"insert_deduplication_token": f"ceiling-{i}"}
        )
    return batch_rows * batches / (time.perf_counter() - began)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--flush-rows", type=int, default=SinkOptions.flush_rows)
    args = parser.parse_args()

    settle_garbage_collector()
    namespace = f"bench{uuid.uuid4().hex[:8]}."
    with tempfile.TemporaryDirectory(prefix="deep-bench-sink-") as state:
        settings = dataclasses.replace(
            load_settings(), state_dir=Path(state), clickhouse_url="", topic_namespace=namespace
        )
        await apply_catalog(
            settings.kafka_bootstrap, namespace, (DISCORD_EVENTS, dead_letter_topic(DISCORD_EVENTS))
        )
        print(f"producing {args.rows:,} events to {DISCORD_EVENTS.name_in(namespace)}", flush=True)
        start = datetime.now(UTC) - timedelta(minutes=30)
        await produce(settings, DISCORD_EVENTS.name_in(namespace), args.rows, start)
        await asyncio.to_thread(migrate, get_clickhouse_client(settings), DATABASE)

        cpu_began = time.process_time()
        total_s, steady_s, steady_rows = await run_sink(
            settings, args.rows, SinkOptions(flush_rows=args.flush_rows)
        )
        # CPU of every thread of the process (the engine's too): the figure that does not depend on how
        # busy the machine is.
        cpu_us_per_row = (time.process_time() - cpu_began) / args.rows * 1e6
        from_start = args.rows / total_s
        steady_rate = steady_rows / steady_s if steady_s > 0 else from_start
        print(
            f"sink: {args.rows:,} rows in {total_s:.2f}s = {from_start:,.0f} rows/s from the start, "
            f"{steady_rate:,.0f} rows/s from the first commit to the last",
            flush=True,
        )
        counted = (
            get_clickhouse_client(settings).query(f"SELECT count() FROM {DATABASE}.events").result_rows[0][0]
        )
        ceiling = await asyncio.to_thread(insert_ceiling, settings, start, args.flush_rows)
        print(f"insert_arrow alone: {ceiling:,.0f} rows/s", flush=True)

        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await admin.start()
        try:
            await admin.delete_topics(
                [DISCORD_EVENTS.name_in(namespace), dead_letter_topic(DISCORD_EVENTS).name_in(namespace)]
            )
        finally:
            await admin.close()
        # Stop the engine before its directory goes.
        get_clickhouse_client(settings).close()
    print(
        json.dumps(
            {
                "bench": "sink",
                "rows": args.rows,
                "flush_rows": args.flush_rows,
                "sink_rows_per_s": round(steady_rate),
                "sink_rows_per_s_from_start": round(from_start),
                "sink_cpu_us_per_row": round(cpu_us_per_row, 2),
                "insert_arrow_rows_per_s": round(ceiling),
                "load_average_1m": round(os.getloadavg()[0], 2),
                "cpus": os.cpu_count(),
                "rows_inserted_by_sink": counted,
                "target_rows_per_s": TARGET_ROWS_PER_S,
                "target_met": steady_rate >= TARGET_ROWS_PER_S,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
