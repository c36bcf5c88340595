"""`deep gateway`: run one gateway runner until SIGTERM or SIGINT; `deep gateway interactions`: the
interactions receiver (gateways/interactions_http.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal

import typer

from gateways import interactions_http, protocol
from gateways.runner import Runner, RunnerConfig
from settings import get_settings
from settings.runtime import settle_garbage_collector

app = typer.Typer(help="A gateway runner: holds the bots of its discord.actions partitions.")


def run_runner(
    runner_id: str | None = None,
    intents: tuple[str, ...] = protocol.DEFAULT_INTENTS,
    session_timeout_ms: int = RunnerConfig.session_timeout_ms,
    heartbeat_interval_ms: int = RunnerConfig.heartbeat_interval_ms,
    roster_interval_s: float = RunnerConfig.roster_interval_s,
    instance_id: str | None = None,
) -> None:
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    protocol.intents_value(intents)  # a bad intent name fails here, before anything connects
    config = RunnerConfig(
        intents=intents,
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=heartbeat_interval_ms,
        roster_interval_s=roster_interval_s,
        instance_id=instance_id,
    )
    if runner_id:
        config = dataclasses.replace(config, runner_id=runner_id)
    asyncio.run(_serve(Runner(settings, config)))


async def _serve(runner: Runner) -> None:
    settle_garbage_collector()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, runner.stop)
    await runner.run()


@app.callback(invoke_without_command=True)
def gateway(
    context: typer.Context,
    runner_id: str = typer.Option(
        "", help="Name in logs, audit rows and Kafka client ids (default host-pid)."
    ),
    intents: str = typer.Option(
        ",".join(protocol.DEFAULT_INTENTS), help="discord.py intent names, comma separated."
    ),
    session_timeout_ms: int = typer.Option(
        RunnerConfig.session_timeout_ms, help="Kafka group session timeout."
    ),
    heartbeat_interval_ms: int = typer.Option(
        RunnerConfig.heartbeat_interval_ms, help="Kafka group heartbeat."
    ),
    roster_interval_s: float = typer.Option(
        RunnerConfig.roster_interval_s, help="Seconds between roster reads."
    ),
    instance_id: str = typer.Option(
        "",
        help="Stable Kafka group instance id (static membership): a restart under the same id takes its"
        " partitions back at once. Unique per runner; empty joins dynamically.",
    ),
) -> None:
    """Run a gateway runner until SIGTERM or SIGINT."""
    if context.invoked_subcommand is not None:
        return
    names = tuple(name.strip() for name in intents.split(",") if name.strip())
    try:
        protocol.intents_value(names)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--intents") from None
    run_runner(
        runner_id or None,
        names,
        session_timeout_ms,
        heartbeat_interval_ms,
        roster_interval_s,
        instance_id or None,
    )


@app.command()
def interactions(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(7992, help="Port to listen on; DEEP_INTERACTIONS_URL is its public URL."),
) -> None:
    """Receive the interactions Discord POSTs to the bots' Interactions Endpoint URL."""
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(interactions_http.serve(settings, host, port))
