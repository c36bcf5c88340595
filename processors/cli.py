"""Running processor workers. Several workers with the same app id share the partitions of the guild topics:
start as many as the load needs, anywhere; a rebalance moves partitions and their tables between them."""

from __future__ import annotations

import asyncio

import faust
import typer
import uvloop

from processors.app import WorkerOptions, create_app, read_routing_seed
from processors.tables import changelog_specs
from settings import Settings, get_settings
from settings.runtime import settle_garbage_collector
from streams.admin import apply_catalog, leave_group


def run_worker(
    settings: Settings | None = None,
    *,
    app_id: str = WorkerOptions.app_id,
    web_port: int | None = None,
    instance_id: str | None = None,
    loglevel: str | None = None,
) -> None:
    """Start one worker and block until it is stopped (SIGINT/SIGTERM)."""
    settings = settings or get_settings()
    # uvloop for the worker's loop and for the one its Kafka consumer thread makes for itself (Faust creates
    # that through the policy): every event passes through both loops' scheduling.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # Before Faust starts: the configuration already published is known before any event is processed.
    seed = loop.run_until_complete(read_routing_seed(settings))
    app = create_app(settings, WorkerOptions(app_id=app_id, web_port=web_port, instance_id=instance_id), seed)
    loop.run_until_complete(apply_catalog(settings.kafka_bootstrap, catalog=changelog_specs(app)))
    worker = faust.Worker(app, loop=loop, loglevel=(loglevel or settings.log_level).lower(), quiet=True)
    # Faust's terminal spinner lowers the root logger to DEBUG so that every record turns it: a log record
    # for every Kafka request, whatever the level asked for.
    worker.spinner = None
    settle_garbage_collector()
    try:
        worker.execute_from_commandline()
    finally:
        # A static member does not leave its group when it stops (a crash must not cost it its partitions);
        # a stop that gets here hands them on at once. (Faust's loop is closed by now: a fresh one.)
        if instance_id is not None:
            asyncio.run(leave_group(settings.kafka_bootstrap, app.conf.id, instance_id))


def processors_command(
    app_id: str = typer.Option(
        WorkerOptions.app_id, help="Consumer group; workers with the same id share work."
    ),
    web_port: int | None = typer.Option(None, help="Port of Faust's web server; off when not given."),
    instance_id: str | None = typer.Option(
        None,
        help="Stable Kafka group instance id (static membership): a restart under the same id gets its"
        " partitions back at once. Unique per worker; not given joins dynamically.",
    ),
) -> None:
    """Run one stream-processor worker."""
    run_worker(app_id=app_id, web_port=web_port, instance_id=instance_id)


if __name__ == "__main__":
    typer.run(processors_command)
