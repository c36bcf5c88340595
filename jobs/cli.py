"""`deep jobs`: replay, state backfill, and Parquet export and import, with progress bars."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal
from uuid import UUID

import typer
from pydantic import ValidationError
from rich.table import Table

from jobs.overrides import ConfigChanges, parse_override
from jobs.timeline import TimeWindow
from models.agent import AgentConfig
from models.common import error_paths, utc_now
from ops.cli import Namespace, console, fail, progress_bars, run
from settings import get_settings

if TYPE_CHECKING:
    from jobs.backfill import BackfillReport
    from jobs.parquet import ExportReport
    from jobs.replay import ReplayReport
    from jobs.rerun import Rerun
    from streams.history import Track

# The jobs themselves are imported by their commands: they bring the processors, Faust and pyarrow, which
# every other `deep` command would otherwise load too.

jobs_app = typer.Typer(help="Batch jobs over the history on Kafka.", no_args_is_help=True)
backfill_app = typer.Typer(help="Rebuild state from history.", no_args_is_help=True)
export_app = typer.Typer(help="Export history.", no_args_is_help=True)
import_app = typer.Typer(help="Import history.", no_args_is_help=True)
jobs_app.add_typer(backfill_app, name="backfill")
jobs_app.add_typer(export_app, name="export")
jobs_app.add_typer(import_app, name="import")

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
TIME_HELP = "ISO 8601 (UTC unless it says otherwise), or a duration ago: 90s, 15m, 2h, 1d."

Start = Annotated[str | None, typer.Option(help=f"Start of the window; default the beginning. {TIME_HELP}")]
End = Annotated[str | None, typer.Option(help=f"End of the window (excluded); default now. {TIME_HELP}")]


def parse_duration(text: str, name: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"{name}: {text!r} is not a duration like 90s, 15m, 2h or 1d")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def parse_time(text: str, name: str, now: datetime) -> datetime:
    """An ISO 8601 time (naive means UTC) or a duration before `now`."""
    if _DURATION.match(text.strip()):
        return now - parse_duration(text, name)
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{name}: {text!r} is neither an ISO 8601 time nor a duration") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def window_of(start: str | None, end: str | None, warmup: str = "0s") -> TimeWindow:
    now = utc_now()
    try:
        return TimeWindow(
            parse_time(start, "--start", now) if start else None,
            parse_time(end, "--end", now) if end else now,
            parse_duration(warmup, "--warmup"),
        )
    except ValueError as error:
        fail(str(error))


def _agent_file(spec: str) -> tuple[UUID, AgentConfig]:
    deployment, equals, path = spec.partition("=")
    if not equals:
        raise ValueError(f"--config {spec!r}: expected DEPLOYMENT_ID=FILE")
    try:
        deployment_id = UUID(deployment.strip())
    except ValueError:
        raise ValueError(f"--config {spec!r}: {deployment!r} is not a deployment id") from None
    try:
        return deployment_id, AgentConfig.model_validate_json(Path(path).read_bytes())
    except ValidationError as error:
        raise ValueError(f"--config {path}: invalid {', '.join(error_paths(error))}") from None


def replay_tables(report: ReplayReport, show: int) -> tuple[Table, Table]:
    stats = report.stats
    summary = Table(title=f"replay {report.run_id}: {len(report.differences)} differences", show_header=False)
    summary.add_column("")
    summary.add_column("", justify="right")
    for label, value in (
        ("events replayed", stats.events),
        ("warm-up events", stats.warmup_events),
        ("routing records", stats.routing_records),
        ("inference results applied", stats.results),
        ("unreadable records", stats.unreadable),
        ("records the engine rejected", stats.failed),
        ("decisions recorded", report.recorded),
        ("decisions replayed", report.replayed),
        ("sandbox namespace", report.sandbox_namespace),
    ):
        summary.add_row(label, str(value))
    for (before, after), count in report.transitions().most_common():
        summary.add_row(f"{before} -> {after}", str(count), style="yellow")
    differences = Table(title=f"first {min(show, len(report.differences))} differences")
    for column in ("event", "deployment", "kind", "recorded", "replayed"):
        differences.add_column(column, overflow="fold")
    for difference in report.differences[:show]:
        recorded, replayed = difference.recorded, difference.replayed
        differences.add_row(
            difference.event_id,
            str(difference.deployment_id),
            difference.kind,
            f"{recorded.reason.value} respond={recorded.respond}" if recorded else "-",
            f"{replayed.reason.value} respond={replayed.respond}" if replayed else "-",
        )
    return summary, differences


@jobs_app.command("replay")
def replay_command(
    start: Start = None,
    end: End = None,
    warmup: Annotated[str, typer.Option(help="Events before start that only build state: 30m, 1h.")] = "0s",
    override: Annotated[
        list[str] | None,
        typer.Option(help="[DEPLOYMENT_ID:]path=value, e.g. trigger.random.probability=0.2 (repeatable)."),
    ] = None,
    config: Annotated[
        list[str] | None, typer.Option(help="DEPLOYMENT_ID=agent.json: a deployment's whole configuration.")
    ] = None,
    run_id: Annotated[
        str | None, typer.Option(help="Names the sandbox namespace; default time and random.")
    ] = None,
    show: Annotated[int, typer.Option(min=0, help="Differences to list.")] = 20,
    namespace: Namespace = None,
) -> None:
    """Re-run the decision processors over a window of discord.events into a sandbox namespace and report
    the differences from the recorded decisions."""
    from jobs.replay import replay
    from vault.user_keys import user_keys

    settings = get_settings()
    window = window_of(start, end, warmup)
    try:
        changes = ConfigChanges(
            overrides=tuple(parse_override(text) for text in override or []),
            agents=dict(_agent_file(spec) for spec in config or []),
        )
    except (ValueError, OSError) as error:
        fail(str(error))
    ns = settings.topic_namespace if namespace is None else namespace

    async def replay_opened(track: Track) -> ReplayReport:
        async with user_keys(settings) as keys:
            return await replay(
                settings.kafka_bootstrap, ns, window, keys, changes=changes, run_id=run_id, track=track
            )

    with progress_bars() as track:
        report = run(replay_opened(track))
    for table in replay_tables(report, show):
        console.print(table)


@backfill_app.command("state")
def backfill_state(
    start: Start = None,
    end: End = None,
    postgres: Annotated[
        bool, typer.Option(help="Upsert relationships into agent_user_relationships.")
    ] = True,
    changelog_app: Annotated[
        str | None,
        typer.Option(help="Also write the app's relationships and moods changelogs (its workers stopped)."),
    ] = None,
    namespace: Namespace = None,
) -> None:
    """Rebuild relationships and moods by re-running the processors over history."""
    from jobs.backfill import rebuild_state, write_changelogs, write_relationships
    from vault.user_keys import user_keys

    settings = get_settings()
    ns = settings.topic_namespace if namespace is None else namespace
    window = window_of(start, end)

    async def rebuild_opened(track: Track) -> tuple[Rerun, BackfillReport]:
        async with user_keys(settings) as keys:
            return await rebuild_state(settings.kafka_bootstrap, ns, window, keys, track=track)

    with progress_bars() as track:
        rerun, report = run(rebuild_opened(track))
        if postgres:
            run(write_relationships(settings.postgres_dsn, report))
        if changelog_app is not None:
            run(write_changelogs(settings.kafka_bootstrap, ns, changelog_app, rerun, report, track=track))
    table = Table(title="backfill", show_header=False)
    table.add_column("")
    table.add_column("", justify="right")
    table.add_row("events", str(report.stats.events))
    table.add_row("relationships rebuilt", str(len(report.relationships)))
    table.add_row("moods rebuilt", str(len(report.moods)))
    table.add_row("relationships written to PostgreSQL", str(report.written_to_postgres))
    table.add_row("deployments PostgreSQL does not know", str(len(report.unknown_deployments)))
    table.add_row("changelog records", str(report.changelog_records))
    console.print(table)


@export_app.command("parquet")
def export_parquet(
    directory: Annotated[
        Path,
        typer.Argument(help="An empty or new directory; under DEEP_PARQUET_EXPORTS_DIR, erasures reach it."),
    ],
    start: Start = None,
    end: End = None,
    namespace: Namespace = None,
) -> None:
    """Export discord.events to Parquet, partitioned by day (day=YYYY-MM-DD). Members' words only from the
    guilds whose owners enabled content exports; elsewhere, and in DMs, messages go without them."""
    from jobs.parquet import content_export_guilds, export_events
    from vault.user_keys import user_keys

    settings = get_settings()
    ns = settings.topic_namespace if namespace is None else namespace
    window = window_of(start, end)
    guilds = run(content_export_guilds(settings.postgres_dsn))

    async def export_opened(track: Track) -> ExportReport:
        async with user_keys(settings) as keys:
            return await export_events(
                settings.kafka_bootstrap, ns, window, directory, keys, content_guilds=guilds, track=track
            )

    with progress_bars() as track:
        report = run(export_opened(track))
    console.print(f"exported {report.rows} events over {len(report.days)} days to {directory}", markup=False)
    if report.unreadable:
        console.print(f"[yellow]left out {report.unreadable} unreadable records[/yellow]")


@import_app.command("parquet")
def import_parquet(
    directory: Annotated[Path, typer.Argument(help="A dataset written by `deep jobs export parquet`.")],
    timestamps: Annotated[
        str,
        typer.Option(help="received: stamp records with received_at (mind retention); now: stamp them now."),
    ] = "received",
    namespace: Namespace = None,
) -> None:
    """Produce exported events back onto discord.events, keyed by the envelope key, each key in order."""
    from jobs.parquet import import_events

    if timestamps not in ("received", "now"):
        fail(f"--timestamps: {timestamps!r} is neither received nor now")
    stamp: Literal["received", "now"] = "received" if timestamps == "received" else "now"
    settings = get_settings()
    ns = settings.topic_namespace if namespace is None else namespace
    with progress_bars() as track:
        rows = run(import_events(settings.kafka_bootstrap, ns, directory, timestamps=stamp, track=track))
    console.print(f"imported {rows} events into {ns}discord.events", markup=False)
