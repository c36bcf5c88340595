"""`deep ops`: topics, consumer lag, dead letters, and agent and token status, as rich tables."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn, TypeVar

import asyncpg
import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from models.analytics import ConsumerLag
from models.erasure import Erasure, ErasureStatus
from ops.kafka import (
    DeadLetterEntry,
    RedriveReport,
    TopicDescription,
    TopicOverview,
    catalog_name,
    consumer_lag,
    describe_topic,
    inspect_dead_letters,
    list_topics,
    redrive,
    redrive_group,
    resolve_dead_letter_topic,
)
from ops.status import AgentStatus, TokenCount, agent_status, token_status
from settings import get_settings
from streams.catalog import CATALOG
from streams.history import Track

T = TypeVar("T")
PREVIEW_CHARS = 80

console = Console()

ops_app = typer.Typer(
    help="Operate the platform: topics, consumer lag, dead letters, agent and token status.",
    no_args_is_help=True,
)
topics_app = typer.Typer(help="Topics on the broker: partitions, offsets, configs.", no_args_is_help=True)
deadletter_app = typer.Typer(help="Dead-letter topics: inspect and re-drive.", no_args_is_help=True)
agents_app = typer.Typer(help="Agent deployments (PostgreSQL).", no_args_is_help=True)
tokens_app = typer.Typer(help="Bot tokens (PostgreSQL; counts only, never a secret).", no_args_is_help=True)
ops_app.add_typer(topics_app, name="topics")
ops_app.add_typer(deadletter_app, name="deadletter")
ops_app.add_typer(agents_app, name="agents")
ops_app.add_typer(tokens_app, name="tokens")

# Who the audit names for what the CLI does.
CLI_ACTOR = "deep cli"
SNOWFLAKE = re.compile(r"[0-9]{1,20}")

Namespace = Annotated[
    str | None, typer.Option(help="Topic namespace (default: DEEP_TOPIC_NAMESPACE of the environment).")
]


def _namespace(namespace: str | None) -> str:
    return get_settings().topic_namespace if namespace is None else namespace


def _topic_name(topic: str, namespace: str) -> str:
    """A catalog name is taken in the namespace; any other name as it is."""
    return f"{namespace}{topic}" if topic in {spec.name for spec in CATALOG} else topic


def fail(message: str) -> NoReturn:
    console.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(1)


def run(work: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; an expected failure (bad input, a missing topic) prints one line."""
    try:
        return asyncio.run(work)
    except (LookupError, ValueError, OSError, RuntimeError, KafkaError, asyncpg.PostgresError) as error:
        fail(f"{type(error).__name__}: {error}" if isinstance(error, KafkaError) else str(error))


@contextmanager
def progress_bars() -> Iterator[Track]:
    """A Track drawing one rich progress bar per long step."""
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:

        def track(what: str, total: int) -> Any:
            task = progress.add_task(what, total=total)
            return lambda done: progress.advance(task, done)

        yield track


# Rendering ---------------------------------------------------------------------------------------------


def topics_table(topics: list[TopicOverview]) -> Table:
    table = Table(title=f"{len(topics)} topics")
    for column in ("topic", "catalog", "partitions", "records", "cleanup", "retention ms"):
        table.add_column(column, justify="right" if column in {"partitions", "records"} else "left")
    for topic in topics:
        table.add_row(
            topic.name,
            "yes" if topic.in_catalog else "",
            str(topic.partitions),
            str(topic.records),
            topic.cleanup_policy,
            topic.retention_ms,
        )
    return table


def topic_tables(topic: TopicDescription, all_configs: bool) -> tuple[Table, Table]:
    partitions = Table(title=f"{topic.name}: {len(topic.partitions)} partitions")
    for column in ("partition", "leader", "replicas", "in sync", "first offset", "end offset", "records"):
        partitions.add_column(column, justify="right")
    for p in topic.partitions:
        partitions.add_row(
            str(p.partition),
            str(p.leader),
            ",".join(map(str, p.replicas)),
            ",".join(map(str, p.in_sync)),
            str(p.first_offset),
            str(p.end_offset),
            str(p.end_offset - p.first_offset),
        )
    configs = Table(title="configs" if all_configs else "configs set on the topic or broker")
    configs.add_column("name")
    configs.add_column("value")
    for name, (value, explicit) in sorted(topic.configs.items()):
        if explicit or all_configs:
            configs.add_row(Text(name), Text(value))
    return partitions, configs


def lag_table(rows: list[ConsumerLag]) -> Table:
    table = Table(title=f"consumer lag: {sum(row.lag for row in rows)} records behind in all")
    for column in ("group", "topic", "partition", "committed", "end", "lag"):
        table.add_column(column, justify="left" if column in {"group", "topic"} else "right")
    for row in rows:
        style = "yellow" if row.lag else None
        table.add_row(
            row.group,
            row.topic,
            str(row.partition),
            str(row.committed_offset),
            str(row.end_offset),
            str(row.lag),
            style=style,
        )
    return table


def preview(entry: DeadLetterEntry) -> str:
    if entry.letter is None:
        return f"(unreadable dead letter: {entry.unreadable})"
    letter = entry.letter
    value = letter.value
    shown = value if len(value) <= PREVIEW_CHARS else value[: PREVIEW_CHARS - 1] + "…"
    if letter.original_bytes is not None:
        shown += f" (the start of {letter.original_bytes:,} bytes)"
    return f"base64:{shown}" if letter.value_encoding == "base64" else shown


def dead_letters_table(topic: str, entries: list[DeadLetterEntry]) -> Table:
    table = Table(title=f"{topic}: {len(entries)} dead letters")
    for column in ("at", "source", "key", "error", "consumer", "failed at", "re-driven", "value"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        letter = entry.letter
        cells = (
            f"{entry.partition}@{entry.offset}",
            f"{letter.source_topic}[{letter.partition}]@{letter.offset}" if letter else "",
            (letter.key or "") if letter else "",
            letter.error if letter else "",
            letter.consumer if letter else "",
            f"{letter.failed_at:%Y-%m-%d %H:%M:%S}" if letter else "",
            "yes" if entry.redriven else "",
            preview(entry),
        )
        # Text, not markup: a dead letter's key, error and value are whatever the record carried.
        table.add_row(*(Text(cell) for cell in cells))
    return table


def redrive_table(topic: str, report: RedriveReport) -> Table:
    table = Table(title=f"re-drove {report.redriven} dead letters of {topic}")
    table.add_column("to")
    table.add_column("records", justify="right")
    for target, count in sorted(report.by_target.items()):
        table.add_row(target, str(count))
    if report.unreadable:
        table.add_row("(unreadable, skipped)", str(report.unreadable))
    if report.partial:
        table.add_row("(only their start kept, skipped: re-read their source records)", str(report.partial))
    if report.remaining:
        table.add_row("(still pending)", str(report.remaining))
    return table


def agents_tables(status: AgentStatus) -> tuple[Table, Table]:
    deployments = Table(title=f"{sum(d.deployments for d in status.deployments)} deployments")
    for column in ("status", "owner tier", "deployments", "agents", "guilds"):
        deployments.add_column(column, justify="left" if column in {"status", "owner tier"} else "right")
    for d in status.deployments:
        deployments.add_row(d.status, d.owner_tier, str(d.deployments), str(d.agents), str(d.guilds))
    agents = Table(title=f"{sum(status.agents.values())} agents")
    agents.add_column("status")
    agents.add_column("agents", justify="right")
    for name, count in sorted(status.agents.items()):
        agents.add_row(name, str(count))
    return deployments, agents


def tokens_table(counts: list[TokenCount]) -> Table:
    table = Table(title=f"{sum(c.tokens for c in counts)} bot tokens")
    columns = (
        "tier",
        "status",
        "tokens",
        "guilds",
        "failures",
        "rate limit hits",
        "check due",
        "last validated",
    )
    for column in columns:
        table.add_column(
            column, justify="left" if column in {"tier", "status", "last validated"} else "right"
        )
    for c in counts:
        table.add_row(
            c.tier,
            c.status,
            str(c.tokens),
            str(c.guilds),
            str(c.failures),
            str(c.rate_limit_hits),
            str(c.health_check_due),
            f"{c.last_validated:%Y-%m-%d %H:%M}" if c.last_validated else "never",
            style="red" if c.status in {"failed", "revoked"} else None,
        )
    return table


# Commands ----------------------------------------------------------------------------------------------


@topics_app.command("list")
def topics_list(
    namespace: Namespace = None,
    catalog_only: Annotated[bool, typer.Option("--catalog", help="Only the catalog's topics.")] = False,
) -> None:
    """Topics of the namespace: partitions, records, cleanup policy and retention."""
    prefix = _namespace(namespace)
    topics = run(list_topics(get_settings().kafka_bootstrap, prefix))
    if catalog_only:
        topics = [topic for topic in topics if catalog_name(topic.name, prefix) is not None]
    console.print(topics_table(topics))


@topics_app.command("describe")
def topics_describe(
    name: Annotated[
        str, typer.Argument(help="A catalog name (taken in the namespace) or a full topic name.")
    ],
    namespace: Namespace = None,
    all_configs: Annotated[bool, typer.Option("--all-configs", help="Broker defaults too.")] = False,
) -> None:
    """A topic's partitions (leader, replicas, offsets) and configs."""
    topic = run(describe_topic(get_settings().kafka_bootstrap, _topic_name(name, _namespace(namespace))))
    for table in topic_tables(topic, all_configs):
        console.print(table)


@ops_app.command("lag")
def lag(
    group: Annotated[
        list[str] | None, typer.Option("--group", help="A consumer group (repeatable); default all.")
    ] = None,
    namespace: Namespace = None,
) -> None:
    """Consumer-group lag per group, topic and partition (topics of the namespace)."""
    rows = run(consumer_lag(get_settings().kafka_bootstrap, group or (), _namespace(namespace)))
    console.print(lag_table(rows))


@deadletter_app.command("inspect")
def deadletter_inspect(
    topic: Annotated[str, typer.Argument(help="The source topic (discord.events) or its dead-letter topic.")],
    limit: Annotated[int, typer.Option(min=1, help="How many to show.")] = 20,
    include_redriven: Annotated[bool, typer.Option("--all", help="Re-driven ones too.")] = False,
    namespace: Namespace = None,
) -> None:
    """Dead letters not yet re-driven: where they came from, why they failed, and the value."""
    name = resolve_dead_letter_topic(topic, _namespace(namespace))
    entries = run(
        inspect_dead_letters(
            get_settings().kafka_bootstrap, name, limit=limit, include_redriven=include_redriven
        )
    )
    console.print(dead_letters_table(name, entries))


@deadletter_app.command("redrive")
def deadletter_redrive(
    topic: Annotated[str, typer.Argument(help="The source topic (discord.events) or its dead-letter topic.")],
    to: Annotated[
        str | None, typer.Option(help="Produce to this topic instead of each letter's source.")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Re-drive at most this many.")] = None,
    namespace: Namespace = None,
) -> None:
    """Produce the original records back to their source topic, once: the re-drive group
    `deep-redrive.<dead-letter topic>` remembers how far it went."""
    ns = _namespace(namespace)
    name = resolve_dead_letter_topic(topic, ns)
    target = _topic_name(to, ns) if to is not None else None
    with progress_bars() as track:
        report = run(redrive(get_settings().kafka_bootstrap, name, to=target, limit=limit, track=track))
    console.print(redrive_table(name, report))
    console.print(f"progress kept by consumer group {redrive_group(name)}", markup=False)


@agents_app.command("status")
def agents_status() -> None:
    """Deployments per status and owner tier, agents per status."""
    for table in agents_tables(run(agent_status(get_settings().postgres_dsn))):
        console.print(table)


@tokens_app.command("status")
def tokens_status() -> None:
    """Bot tokens per tier and status, with failures, rate-limit hits and due health checks."""
    console.print(tokens_table(run(token_status(get_settings().postgres_dsn))))


users_app = typer.Typer(help="A Discord user's data: erase it everywhere, export it.", no_args_is_help=True)
UserId = Annotated[str, typer.Argument(help="The Discord user id (a snowflake).")]


def _user_id(user_id: str) -> str:
    if not SNOWFLAKE.fullmatch(user_id):
        fail(f"user_id: {user_id!r} is not a Discord id (1 to 20 digits)")
    return user_id


@users_app.command("erase")
def users_erase(user_id: UserId) -> None:
    """Erase the user's data from every store and wait until it is done. Asking again while an erasure of
    the user runs (here or in the API) joins it; after a crash, asking again resumes it."""
    from ops.erasure import ErasureLedger, connected_stores, run_erasure

    user = _user_id(user_id)

    async def erase() -> Erasure:
        async with connected_stores(get_settings()) as stores:
            erasure, _ = await ErasureLedger(stores.pool).request(user, CLI_ACTOR)
            console.print(f"erasure {erasure.erasure_id}: {len(erasure.remaining)} step(s) to do")
            return await run_erasure(
                stores,
                erasure.erasure_id,
                CLI_ACTOR,
                on_step=lambda s: console.print(f"  {s.step.value}: done, {s.removed} removed"),
            )

    erasure = run(erase())
    if erasure.status is not ErasureStatus.done:
        fail(
            f"erasure {erasure.erasure_id} is being run by another process; its steps so far: {erasure.steps}"
        )
    console.print(f"erasure {erasure.erasure_id}: done")


@users_app.command("export")
def users_export(user_id: UserId) -> None:
    """Print everything held about the user as JSON (a subject-access request)."""
    from ops.erasure import connected_stores, export_user_data

    user = _user_id(user_id)

    async def export() -> str:
        async with connected_stores(get_settings()) as stores:
            return (await export_user_data(stores, user, CLI_ACTOR)).model_dump_json(indent=2)

    print(run(export()))
