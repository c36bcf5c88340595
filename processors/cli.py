"""Running processor workers. Several workers with the same app id share the partitions of the guild topics:
start as many as the load needs, anywhere; a rebalance moves partitions and their tables between them."""

from __future__ import annotations

import asyncio

import faust
import typer

from processors.app import WorkerOptions, create_app, read_routing_seed
from processors.tables import changelog_specs
from settings import Settings, get_settings
from settings.runtime import settle_garbage_collector
from streams.admin import apply_catalog


def run_worker(
    settings: Settings | None = None,
    *,
    app_id: str = WorkerOptions.app_id,
    web_port: int | None = None,
    loglevel: str | None = None,
) -> None:
    """Start one worker and block until it is stopped (SIGINT/SIGTERM)."""
    settings = settings or get_settings()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # Before Faust starts: the configuration already published is known before any event is processed.
    seed = loop.run_until_complete(read_routing_seed(settings))
    app = create_app(settings, WorkerOptions(app_id=app_id, web_port=web_port), seed)
    loop.run_until_complete(apply_catalog(settings.kafka_bootstrap, catalog=changelog_specs(app)))
    worker = faust.Worker(app, loop=loop, loglevel=(loglevel or settings.log_level).lower(), quiet=True)
    # Faust's terminal spinner lowers the root logger to DEBUG so that every record turns it: a log record
    # for every Kafka request, whatever the level asked for.
    worker.spinner = None
    settle_garbage_collector()
    worker.execute_from_commandline()


def processors_command(
    app_id: str = typer.Option(
        WorkerOptions.app_id, help="Consumer group; workers with the same id share work."
    ),
    web_port: int | None = typer.Option(None, help="Port of Faust's web server; off when not given."),
) -> None:
    """Run one stream-processor worker."""
    run_worker(app_id=app_id, web_port=web_port)


if __name__ == "__main__":
    typer.run(processors_command)
