"""`deep stack up|down|status` and `deep db migrate` (mounted by deep/cli.py)."""

from __future__ import annotations

import asyncio
import time

import typer
from rich.markup import escape
from rich.table import Table

from infra.migrate import migrate
from infra.stack import lifecycle as stack
from infra.stack.process import StepFailed, console
from infra.stack.service import Outcome
from settings import get_settings

stack_app = typer.Typer(
    help="The native dev stack on 127.0.0.1: Kafka, PostgreSQL, Redis, ClickHouse, Weaviate, the local model "
    "and stripe-mock."
)
db_app = typer.Typer()

OUTCOME_STYLE = {Outcome.STARTED: "green", Outcome.RUNNING: "cyan", Outcome.FAILED: "bold red"}


@stack_app.command("up")
def up_command() -> None:
    """Install what is missing, start what is not running, wait until every service answers."""
    began = time.monotonic()
    try:
        results = asyncio.run(stack.up(get_settings()))
    except StepFailed as exc:
        console.print(f"[bold red]install failed:[/bold red] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    for result in results:
        style = OUTCOME_STYLE[result.outcome]
        first, _, rest = result.detail.partition("\n")
        console.print(f"{result.name:<11} [{style}]{result.outcome}[/{style}] {escape(first)}")
        if rest:
            console.print(escape(rest), style="dim")
    console.print(f"stack up in {time.monotonic() - began:.1f}s")
    if any(result.outcome is Outcome.FAILED for result in results):
        raise typer.Exit(1)


@stack_app.command("down")
def down_command() -> None:
    """Stop the services `deep stack up` started (and nothing else); data is kept."""
    for name, message in stack.down(get_settings()):
        console.print(f"{name:<11} {message}")


@stack_app.command("status")
def status_command() -> None:
    """Health of each service, checked with a real request; exit code 1 when any is unhealthy."""
    reports = asyncio.run(stack.status(get_settings()))
    table = Table("service", "address", "health", "pid", "log")
    for report in reports:
        colour = "green" if report.healthy else "red"
        table.add_row(
            report.name,
            report.address,
            f"[{colour}]{escape(report.health)}[/{colour}]",
            str(report.pid) if report.pid is not None else "-",
            str(report.log_file) if report.log_file is not None else "-",
        )
    console.print(table)
    if not all(report.healthy for report in reports):
        raise typer.Exit(1)


@db_app.callback()
def db_callback() -> None:
    """The PostgreSQL schema."""


@db_app.command("migrate")
def migrate_command() -> None:
    """Apply pending migrations from infra/postgres/migrations."""
    applied = asyncio.run(migrate(get_settings().postgres_dsn))
    if applied:
        console.print(f"applied migrations: {', '.join(applied)}")
    else:
        console.print("schema up to date: nothing to apply")


if __name__ == "__main__":
    # Stand-alone runner until deep/cli.py mounts these apps: python -m infra.stack.cli stack up
    runner = typer.Typer()
    runner.add_typer(stack_app, name="stack")
    runner.add_typer(db_app, name="db")
    runner()
