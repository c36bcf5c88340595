"""The sinks in a process of their own, for the crash test (`python -m tests.analytics.sink_process`).

`sinks [--crash-after-inserts N]`: run every sink until SIGTERM; with N, the events sink kills its own
process (SIGKILL) right after its Nth insert, before committing the offsets: the worst moment to die.
`query SQL...`: print the rows of each query as one JSON line (the engine is single-process, so the test
reads ClickHouse through here once the sinks are down).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal

from infra.stack.clickhouse import get_clickhouse_client
from settings import load_settings
from sinks.batch import BatchPlan
from sinks.cli import serve_sinks
from sinks.consumer import SinkOptions, TopicSink
from sinks.tables import EVENTS


def crashing_sink(after_inserts: int) -> type[TopicSink]:
    class CrashingSink(TopicSink):
        async def commit_batch(self, plan: BatchPlan) -> None:
            if self.writer.table is EVENTS and self.inserts >= after_inserts:
                os.kill(os.getpid(), signal.SIGKILL)
            await super().commit_batch(plan)

    return CrashingSink


def main() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("sinks")
    run.add_argument("--crash-after-inserts", type=int)
    run.add_argument("--flush-rows", type=int, default=400)
    query = commands.add_parser("query")
    query.add_argument("sql", nargs="+")
    args = parser.parse_args()
    settings = load_settings()
    if args.command == "query":
        client = get_clickhouse_client(settings)
        print(json.dumps([client.query(sql).result_rows for sql in args.sql], default=str))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s: %(message)s")
    sink_class = crashing_sink(args.crash_after_inserts) if args.crash_after_inserts else TopicSink
    options = SinkOptions(flush_rows=args.flush_rows, flush_interval_s=0.2, instance_id="crash-test")
    asyncio.run(serve_sinks(settings, options=options, lag_interval_s=3600.0, sink_class=sink_class))


if __name__ == "__main__":
    main()
