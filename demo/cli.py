"""Commands: `demo_command` (wired as `deep demo`) and `playground_command` (`deep playground`);
`python -m demo run | playground` runs them without the `deep` front door."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import typer

from demo.options import DemoError, DemoOptions

_DEFAULTS = DemoOptions()


def demo_command(
    port: int = typer.Option(_DEFAULTS.playground_port, help="Port of the playground page."),
    emulator_port: int = typer.Option(_DEFAULTS.emulator_port, help="Port of the Discord emulator."),
    api_port: int = typer.Option(_DEFAULTS.api_port, help="Port of the demo's configuration API."),
    interactions_port: int = typer.Option(
        _DEFAULTS.interactions_port, help="Port of the interactions receiver."
    ),
    interactions_endpoint: bool = typer.Option(
        _DEFAULTS.interactions_endpoint,
        help="Bots receive interactions over HTTP at the receiver (off: over their gateway sessions).",
    ),
    namespace: str = typer.Option(_DEFAULTS.namespace, help="Topic namespace of the demo world."),
    schema: str = typer.Option(_DEFAULTS.schema, help="PostgreSQL schema of the demo (emptied at start)."),
    chat_rate: float = typer.Option(
        _DEFAULTS.chat_rate_per_s, help="Simulated messages per second (0: none)."
    ),
    sinks: bool = typer.Option(_DEFAULTS.sinks, help="Copy the demo's analytics into ClickHouse."),
    playground: bool = typer.Option(
        _DEFAULTS.playground, help="Serve the playground (off: the platform alone, e.g. for benchmarks)."
    ),
    work_dir: Path | None = typer.Option(None, help="Logs and local data (default: <state dir>/demo)."),
) -> None:
    """Run the whole platform in a demo world with a browser playground, until Ctrl-C."""
    options = DemoOptions(
        playground_port=port,
        emulator_port=emulator_port,
        api_port=api_port,
        interactions_port=interactions_port,
        interactions_endpoint=interactions_endpoint,
        namespace=namespace,
        schema=schema,
        chat_rate_per_s=chat_rate,
        sinks=sinks,
        playground=playground,
        work_dir=work_dir,
    )
    from demo.orchestrator import run_demo

    try:
        run_demo(options)
    except DemoError as error:
        typer.echo(f"demo: {error}", err=True)
        raise typer.Exit(1) from None


def playground_command(
    deployment: list[UUID] = typer.Option(..., help="Deployment id to follow (repeatable)."),
    port: int = typer.Option(_DEFAULTS.playground_port, help="Port of the playground page."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    namespace: str | None = typer.Option(None, help="Topic namespace (default: DEEP_TOPIC_NAMESPACE)."),
) -> None:
    """Follow real deployments read-only: configuration, decisions with reasons, mood, relationships."""
    from demo.follow import follow

    try:
        follow(deployment, host, port, namespace)
    except LookupError as error:
        typer.echo(f"playground: {error}", err=True)
        raise typer.Exit(1) from None


app = typer.Typer(
    help="The demo world and its playground.", no_args_is_help=True, pretty_exceptions_show_locals=False
)
app.command("run")(demo_command)
app.command("playground")(playground_command)
