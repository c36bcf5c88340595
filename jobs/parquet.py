"""Events to Parquet and back: `discord.events` over a time window into one dataset partitioned by day
(hive layout, `day=YYYY-MM-DD` of received_at in UTC), and an import producing the envelopes back onto a
topic, keyed as the gateways key them.

Columns: the envelope's fields with `data` as its JSON text, and three more that make the round trip
lossless: `received_at_offset_s`, the UTC offset received_at was written with (null when it had none), and
`source_partition` / `source_offset`, by which the import restores each key's original order (all events
of a key are on one partition).

What members wrote leaves only for guilds where every owner with a bot there enabled content exports
(`owners.content_exports`, `content_export_guilds`): elsewhere, and in direct messages always, every field
that can hold their words (CONTENT_FIELDS, at any depth of `data`) is exported empty. Ids, kinds and times
stay, so an export still replays the shape of the traffic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

import asyncpg
import orjson
import pyarrow as pa
import pyarrow.dataset as ds
from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata
from pydantic import Field

from jobs.timeline import TimeWindow, merged, spans, to_ms
from models.common import Strict
from models.events import EventEnvelope, SealedData
from streams.catalog import DISCORD_EVENTS
from streams.codec import CodecError, encode_key
from streams.history import KafkaTools, Track, no_progress
from streams.sealing import DataKeys, open_envelope, seal_envelope

ENVELOPE_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("bot_id", pa.string()),
        ("shard_id", pa.int64()),
        ("guild_id", pa.string()),
        ("channel_id", pa.string()),
        ("type", pa.string()),
        ("sequence", pa.int64()),
        ("received_at", pa.timestamp("us", tz="UTC")),
        ("received_at_offset_s", pa.int32()),
        ("data", pa.string()),
        # The sealed personal fields as the JSON text of the envelope's `sealed` and `sealed_references`
        # (null when it has none): an export holds them sealed as the topic does, so erasing a user's key
        # erases them from every export too.
        ("sealed", pa.string()),
        ("schema_version", pa.int32()),
        ("source_partition", pa.int32()),
        ("source_offset", pa.int64()),
    ]
)
DAY = pa.field("day", pa.string())
PARTITIONING = ds.partitioning(pa.schema([DAY]), flavor="hive")
# Message text, embeds and files, polls, forwarded and replied-to messages, slash command arguments.
CONTENT_FIELDS = frozenset(
    {"content", "embeds", "attachments", "poll", "message_snapshots", "referenced_message", "options"}
)
ROWS_PER_FILE = 50_000
_PENDING_SENDS = 10_000


@dataclass(frozen=True)
class StoredEvent:
    envelope: EventEnvelope
    partition: int
    offset: int


def _emptied(value: Any) -> Any:
    if isinstance(value, str):
        return ""
    if isinstance(value, list):
        return []
    return {} if isinstance(value, dict) else None


def _without_content(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: _emptied(item) if key in CONTENT_FIELDS else _without_content(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_without_content(item) for item in value]
    return value


def exported(envelope: EventEnvelope, content_guilds: frozenset[str]) -> EventEnvelope:
    """The envelope as an export may hold it: whole in a guild whose owner enabled content exports, else
    with every content field empty."""
    if _content_allowed(envelope, content_guilds):
        return envelope
    return envelope.model_copy(update={"data": _without_content(envelope.data)})


def _content_allowed(envelope: EventEnvelope, content_guilds: frozenset[str]) -> bool:
    return envelope.guild_id is not None and envelope.guild_id in content_guilds


async def exported_sealed(
    envelope: EventEnvelope, content_guilds: frozenset[str], keys: DataKeys
) -> EventEnvelope:
    """`exported` for an event as the topic holds it: its content emptied inside the sealed parts, which stay
    sealed under their users' keys; an erased subject's event keeps its clear part alone."""
    if envelope.sealed is None or _content_allowed(envelope, content_guilds):
        return exported(envelope, content_guilds)
    opened = await open_envelope(envelope, keys)
    if opened is None:
        return envelope.model_copy(update={"sealed": None, "sealed_references": []})
    return await seal_envelope(exported(opened, content_guilds), keys)


async def content_export_guilds(dsn: str) -> frozenset[str]:
    """The guilds whose message content an export may carry: every owner with a deployment there (paused
    or not: their bot saw the messages) enabled content exports."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """SELECT d.guild_id FROM agent_deployments d
               JOIN agent_configurations c USING (config_id) JOIN owners o ON o.owner_id = c.owner_id
               GROUP BY d.guild_id HAVING bool_and(o.content_exports)"""
        )
    finally:
        await conn.close()
    return frozenset(row["guild_id"] for row in rows)


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC) if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _offset_s(at: datetime) -> int | None:
    offset = at.utcoffset()
    return None if offset is None else int(offset.total_seconds())


def events_table(events: Sequence[StoredEvent]) -> pa.Table:
    """The rows of some events, with the `day` they are partitioned by."""
    envelopes = [event.envelope for event in events]
    columns: dict[str, list[Any]] = {
        "event_id": [e.event_id for e in envelopes],
        "bot_id": [e.bot_id for e in envelopes],
        "shard_id": [e.shard_id for e in envelopes],
        "guild_id": [e.guild_id for e in envelopes],
        "channel_id": [e.channel_id for e in envelopes],
        "type": [e.type for e in envelopes],
        "sequence": [e.sequence for e in envelopes],
        "received_at": [_utc(e.received_at) for e in envelopes],
        "received_at_offset_s": [_offset_s(e.received_at) for e in envelopes],
        "data": [orjson.dumps(e.data).decode() for e in envelopes],
        "sealed": [_sealed_text(e) for e in envelopes],
        "schema_version": [e.schema_version for e in envelopes],
        "source_partition": [event.partition for event in events],
        "source_offset": [event.offset for event in events],
    }
    days = [_utc(e.received_at).date().isoformat() for e in envelopes]
    return pa.Table.from_pydict(columns, schema=ENVELOPE_SCHEMA).append_column(
        DAY, pa.array(days, pa.string())
    )


class _SealedColumn(Strict):
    """What the `sealed` column holds: the envelope's sealed parts."""

    sealed: SealedData | None = None
    sealed_references: list[SealedData] = Field(default_factory=list)


def _sealed_text(envelope: EventEnvelope) -> str | None:
    if envelope.sealed is None:
        return None
    return _SealedColumn(
        sealed=envelope.sealed, sealed_references=envelope.sealed_references
    ).model_dump_json()


def _received_at(utc: datetime, offset_s: int | None) -> datetime:
    if offset_s is None:
        return utc.replace(tzinfo=None)
    return utc.astimezone(timezone(timedelta(seconds=offset_s)))


def table_envelopes(table: pa.Table) -> Iterator[EventEnvelope]:
    """The envelopes of rows written by events_table, in the table's order."""
    for batch in table.to_batches(max_chunksize=10_000):
        for row in batch.to_pylist():
            parts = _SealedColumn.model_validate_json(row["sealed"] or "{}")
            yield EventEnvelope(
                schema_version=row["schema_version"],
                event_id=row["event_id"],
                bot_id=row["bot_id"],
                shard_id=row["shard_id"],
                guild_id=row["guild_id"],
                channel_id=row["channel_id"],
                type=row["type"],
                sequence=row["sequence"],
                received_at=_received_at(row["received_at"], row["received_at_offset_s"]),
                data=orjson.loads(row["data"]),
                sealed=parts.sealed,
                sealed_references=parts.sealed_references,
            )


@dataclass
class ExportReport:
    rows: int = 0
    unreadable: int = 0  # records the codec rejects are left out (the processors dead-lettered them)
    days: list[str] = field(default_factory=list)


def _prepare(directory: Path) -> None:
    if directory.exists() and any(directory.iterdir()):
        raise FileExistsError(f"directory: {directory} is not empty")
    directory.mkdir(parents=True, exist_ok=True)


def _write(directory: Path, events: list[StoredEvent], part: int) -> set[str]:
    table = events_table(events)
    ds.write_dataset(
        table,
        directory,
        format="parquet",
        partitioning=PARTITIONING,
        basename_template=f"events-{part:05d}-{{i}}.parquet",
        existing_data_behavior="overwrite_or_ignore",
    )
    return set(table.column("day").to_pylist())


async def export_events(
    bootstrap: str,
    namespace: str,
    window: TimeWindow,
    directory: Path,
    keys: DataKeys,
    *,
    content_guilds: frozenset[str] = frozenset(),
    track: Track = no_progress,
) -> ExportReport:
    """Write the window's events under `directory`, which must be empty or absent: a second export into the
    same dataset would duplicate rows. Message content is kept only for `content_guilds`."""
    await asyncio.to_thread(_prepare, directory)
    report = ExportReport()
    days: set[str] = set()
    async with KafkaTools(bootstrap) as kafka:
        event_spans = await spans(kafka, DISCORD_EVENTS.name_in(namespace), window.start, window.end)
        advance = track("exporting events", sum(span.size for span in event_spans))
        pending: list[StoredEvent] = []
        async for _, record in merged(kafka.reader, [event_spans]):
            advance(1)
            try:
                envelope = await exported_sealed(
                    DISCORD_EVENTS.codec.decode(record.value), content_guilds, keys
                )
            except CodecError:
                report.unreadable += 1
                continue
            pending.append(StoredEvent(envelope, record.partition, record.offset))
            if len(pending) == ROWS_PER_FILE:
                days |= await asyncio.to_thread(_write, directory, pending, report.rows // ROWS_PER_FILE)
                report.rows += len(pending)
                pending = []
        if pending:
            days |= await asyncio.to_thread(_write, directory, pending, report.rows // ROWS_PER_FILE)
            report.rows += len(pending)
    report.days = sorted(days)
    return report


def read_dataset(directory: Path) -> pa.Table:
    """Every row of an exported dataset, in the order that keeps each key's events in their original order."""
    if not directory.is_dir():
        raise FileNotFoundError(f"directory: {directory} does not exist")
    dataset = ds.dataset(directory, format="parquet", partitioning=PARTITIONING)
    table = dataset.to_table(columns=ENVELOPE_SCHEMA.names)
    return table.sort_by([("source_partition", "ascending"), ("source_offset", "ascending")])


async def import_events(
    bootstrap: str,
    namespace: str,
    directory: Path,
    *,
    timestamps: Literal["received", "now"] = "received",
    track: Track = no_progress,
) -> int:
    """Produce an exported dataset onto `discord.events` of the namespace; returns the rows produced.
    `received` stamps each record with its received_at, so time windows select it as they did the original
    (mind the topic's retention: records older than it are deleted soon after); `now` stamps it now."""
    table = await asyncio.to_thread(read_dataset, directory)
    topic = DISCORD_EVENTS.name_in(namespace)
    advance = track(f"importing into {topic}", table.num_rows)
    # Idempotence keeps each partition's order through retries.
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=20
    )
    await producer.start()
    sends: list[asyncio.Future[RecordMetadata]] = []
    try:
        for envelope in table_envelopes(table):
            stamp = to_ms(_utc(envelope.received_at)) if timestamps == "received" else None
            value = DISCORD_EVENTS.codec.encode(envelope)
            sends.append(await producer.send(topic, value, key=encode_key(envelope.key), timestamp_ms=stamp))
            if len(sends) == _PENDING_SENDS:
                await asyncio.gather(*sends)
                advance(len(sends))
                sends.clear()
        await asyncio.gather(*sends)
        advance(len(sends))
    finally:
        await producer.stop()
    return table.num_rows
