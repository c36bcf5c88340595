"""`deep sinks`: every sink, the lag sampler and the `/stats` answers in one process (the embedded engine
allows one process)."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from infra.stack.clickhouse import get_clickhouse_client
from settings import Settings, get_settings
from settings.runtime import settle_garbage_collector
from sinks.answering import AnsweringService
from sinks.clickhouse.schema import DEFAULT_DATABASE, apply_retention, migrate
from sinks.consumer import SinkOptions, TableWriter, TopicSink
from sinks.erasure import ErasureService, ExportService
from sinks.lag import LagSampler
from sinks.owner_analytics import OwnerAnalyticsService
from sinks.stats import StatsService
from sinks.tables import CONSUMER_LAG, TOPIC_TABLES
from vault.user_keys import user_keys


async def serve_sinks(
    settings: Settings,
    *,
    database: str = DEFAULT_DATABASE,
    options: SinkOptions = SinkOptions(),
    lag_interval_s: float = 10.0,
    sink_class: type[TopicSink] = TopicSink,
    stop: asyncio.Event | None = None,
) -> None:
    """Migrate the schema and set its retention, then run until `stop` is set (or SIGTERM/SIGINT), when
    each sink flushes and commits what it holds."""
    settle_garbage_collector()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    client = get_clickhouse_client(settings)
    await asyncio.to_thread(migrate, client, database)
    await asyncio.to_thread(apply_retention, client, settings.retention.analytics_days, database)
    bootstrap = settings.kafka_bootstrap
    namespace = settings.topic_namespace
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, client_id="deep-sinks", acks="all")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="deep-sinks")
    await producer.start()
    await admin.start()
    try:
        async with user_keys(settings) as keys:
            sinks = [
                sink_class(
                    spec,
                    TableWriter(client, database, table),
                    bootstrap=bootstrap,
                    namespace=namespace,
                    producer=producer,
                    admin=admin,
                    keys=keys,
                    options=options,
                )
                for spec, table in TOPIC_TABLES
            ]
            sampler = LagSampler(
                TableWriter(client, database, CONSUMER_LAG),
                admin,
                bootstrap,
                topic_prefix=namespace,
                interval_s=lag_interval_s,
            )
            # /stats, the console's analytics and an erasure's and an access export's part in ClickHouse are
            # answered here: this process is the one that holds ClickHouse.
            answering = dict(bootstrap=bootstrap, namespace=namespace, producer=producer, options=options)
            stats = StatsService(client, database, **answering)
            owner_analytics = OwnerAnalyticsService(client, database, **answering)
            erasures = ErasureService(client, database, **answering)
            exports = ExportService(client, database, keys=keys, **answering)
            running: list[TopicSink | LagSampler | AnsweringService] = [
                *sinks,
                sampler,
                stats,
                owner_analytics,
                erasures,
                exports,
            ]
            workers = [asyncio.create_task(worker.run()) for worker in running]
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait([stopped, *workers], return_when=asyncio.FIRST_COMPLETED)
            for worker in running:
                worker.stop()
            stopped.cancel()
            # A worker that failed re-raises here, after the others flushed and left their groups.
            await asyncio.gather(*workers)
    finally:
        await admin.close()
        await producer.stop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def run_sinks(
    settings: Settings | None = None,
    *,
    database: str = DEFAULT_DATABASE,
    options: SinkOptions | None = None,
    lag_interval_s: float = 10.0,
) -> None:
    """Copy every analytics topic into ClickHouse until SIGTERM or Ctrl-C. By default the process is a
    static member of the sinks' groups under its host name (one sink process per host)."""
    settings = settings or get_settings()
    options = options or SinkOptions(
        instance_id=f"sinks@{socket.gethostname()}", broker_fetch=settings.bulk_fetch
    )
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve_sinks(settings, database=database, options=options, lag_interval_s=lag_interval_s))


if __name__ == "__main__":
    run_sinks()
