"""Erasing one Discord user's data everywhere, and exporting what is held about them.

An erasure is recorded in PostgreSQL (`erasures`, migration 0008) with the steps it has done; `run_erasure`
does the remaining ones in `ErasureStep` order, each idempotent, under an advisory lock held by the running
process's connection: a process that dies drops the lock, and a rerun does the steps not recorded. One
erasure runs per user at a time (a unique index): requesting again while it runs returns it.

The processors' tables and ClickHouse live in processes of their own: the job writes an `ErasureControl`
to every partition of `privacy.erasures` and waits for their `ErasureAck`s on `privacy.erasure.acks`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID, uuid4

import asyncpg
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import BaseModel, TypeAdapter
from redis.asyncio import Redis

from inference.config import InferenceConfig
from memory.store import MemoryStore
from memory.store import connect as connect_memory
from models.erasure import (
    AnalyticsExportRequest,
    Erasure,
    ErasureAck,
    ErasureComponent,
    ErasureControl,
    ErasureStatus,
    ErasureStep,
    StepRecord,
    UserDataExport,
    id_pattern,
    names_user,
)
from models.events import SealedData
from processors.erasure import held_about
from processors.table_catalog import PROCESSORS_APP_ID, RING_TABLES, TABLE_MODELS, changelog_topic
from settings import Settings
from settings.runtime import cancel_until_done
from sinks.erasure import ANALYTICS_PARTITION
from streams.catalog import (
    DISCORD_EVENTS,
    GUILD_PARTITIONS,
    PRIVACY_ERASURE_ACKS,
    PRIVACY_ERASURES,
    PRIVACY_EXPORT_ANSWERS,
    PRIVACY_EXPORTS,
    TopicSpec,
)
from streams.codec import CodecError, encode_key
from streams.history import every_record, read_compacted_topics
from streams.sealing import DataKeys, open_envelope, open_fields, open_payload, seal_payload
from vault.user_keys import UserKeyStore

log = logging.getLogger(__name__)

# What a notification says instead of the erased user's id (reports name their reporter).
ERASED_USER = "[erased user]"
PARTITIONS = frozenset(range(GUILD_PARTITIONS))
# How many erasures one process runs at the same time.
RUNNING_AT_ONCE = 4


class ExportIncomplete(RuntimeError):
    """A store did not answer the access export in time; the export is not given half done."""


class ErasureIncomplete(RuntimeError):
    """A step could not finish now (a component did not acknowledge in time): running again resumes it."""


class UserKeys(DataKeys, Protocol):
    """The vault's per-user data keys: the export opens sealed events with them, the erasure destroys the
    user's (crypto-shredding every copy of their events)."""

    async def holds_key(self, user_id: str) -> bool: ...

    async def destroy_user_keys(self, user_id: str) -> int: ...


def user_digest(user_id: str) -> str:
    """What a finished erasure and the audit keep instead of the user id."""
    return hashlib.sha256(user_id.encode()).hexdigest()


@dataclass(frozen=True)
class ErasureStores:
    """Every store an erasure reaches, and where the other processes listen."""

    # A running erasure holds a connection of its own (its lock); the pool serves the short queries.
    postgres_dsn: str
    pool: asyncpg.Pool
    redis: Redis
    memories: MemoryStore
    user_keys: UserKeys
    bootstrap: str
    namespace: str
    parquet_dir: Path
    processors_app_id: str = PROCESSORS_APP_ID
    # Key prefixes of the caches whose entries hold prompts (and answers to them) of anyone: an erasure
    # empties them, a cache being only a saving.
    cache_prefixes: tuple[str, ...] = (
        f"{InferenceConfig.key_prefix}cache:",
        f"{InferenceConfig.key_prefix}knowledge:",
    )
    # How long a run waits for the processors' and the sinks' acknowledgements before giving up (a rerun
    # resumes the wait).
    ack_timeout_s: float = 120.0


def erasure_stores(
    settings: Settings, dsn: str, pool: asyncpg.Pool, redis: Redis, memories: MemoryStore
) -> ErasureStores:
    """The stores of this environment over a process's own pool (of `dsn`), Redis and memory clients."""
    return ErasureStores(
        postgres_dsn=dsn,
        pool=pool,
        redis=redis,
        memories=memories,
        user_keys=UserKeyStore.from_settings(pool, settings),
        bootstrap=settings.kafka_bootstrap,
        namespace=settings.topic_namespace,
        parquet_dir=settings.parquet_exports_dir,
    )


@asynccontextmanager
async def connected_stores(settings: Settings) -> AsyncIterator[ErasureStores]:
    """The stores with connections of their own (the CLI)."""
    pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=4)
    redis = Redis.from_url(settings.redis_url)
    memories = MemoryStore(connect_memory(settings))
    try:
        await memories.client.connect()
        await memories.ensure_collection()
        yield erasure_stores(settings, settings.postgres_dsn, pool, redis, memories)
    finally:
        await memories.client.close()
        await redis.aclose()
        await pool.close()


# --- the ledger (PostgreSQL) ------------------------------------------------------------------------------


class ErasureLedger:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def request(self, user_id: str, actor: str) -> tuple[Erasure, bool]:
        """The running erasure of the user, or a new one; True when new."""
        digest = user_digest(user_id)
        async with self.pool.acquire() as conn, conn.transaction():
            created = await conn.fetchval(
                "INSERT INTO erasures (erasure_id, user_id, user_digest, requested_by)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) WHERE finished_at IS NULL DO NOTHING"
                " RETURNING erasure_id",
                uuid4(),
                user_id,
                digest,
                actor,
            )
            erasure_id = created or await conn.fetchval(
                "SELECT erasure_id FROM erasures WHERE user_id = $1 AND finished_at IS NULL", user_id
            )
            await _audit(conn, erasure_id, digest, actor, "requested" if created else "requested again")
        erasure = await self.get(erasure_id)
        assert erasure is not None
        return erasure, created is not None

    async def get(self, erasure_id: UUID) -> Erasure | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM erasures WHERE erasure_id = $1", erasure_id)
            if row is None:
                return None
            steps = await conn.fetch(
                "SELECT step, removed, done_at FROM erasure_steps WHERE erasure_id = $1", erasure_id
            )
        records = sorted(
            (
                StepRecord(step=ErasureStep(s["step"]), removed=s["removed"], done_at=s["done_at"])
                for s in steps
            ),
            key=lambda r: list(ErasureStep).index(r.step),
        )
        return Erasure(
            erasure_id=UUID(str(row["erasure_id"])),
            user_id=row["user_id"],
            user_digest=row["user_digest"],
            status=ErasureStatus.running if row["finished_at"] is None else ErasureStatus.done,
            requested_by=row["requested_by"],
            requested_at=row["requested_at"],
            finished_at=row["finished_at"],
            steps=records,
        )

    async def unfinished(self) -> list[UUID]:
        rows = await self.pool.fetch("SELECT erasure_id FROM erasures WHERE finished_at IS NULL")
        return [UUID(str(row["erasure_id"])) for row in rows]

    async def step_done(self, erasure_id: UUID, step: ErasureStep, removed: int) -> None:
        await self.pool.execute(
            "INSERT INTO erasure_steps (erasure_id, step, removed) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING",
            erasure_id,
            step.value,
            removed,
        )

    async def finish(self, erasure: Erasure, actor: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE erasures SET finished_at = now(), user_id = NULL"
                " WHERE erasure_id = $1 AND finished_at IS NULL",
                erasure.erasure_id,
            )
            await _audit(conn, erasure.erasure_id, erasure.user_digest, actor, "finished")

    async def audit(self, erasure_id: UUID | None, user_id: str, actor: str, action: str) -> None:
        async with self.pool.acquire() as conn:
            await _audit(conn, erasure_id, user_digest(user_id), actor, action)


async def _audit(
    conn: asyncpg.Connection, erasure_id: UUID | None, digest: str, actor: str, action: str
) -> None:
    await conn.execute(
        "INSERT INTO erasure_audit (erasure_id, user_digest, actor, action) VALUES ($1, $2, $3, $4)",
        erasure_id,
        digest,
        actor,
        action,
    )


# --- the control topic --------------------------------------------------------------------------------------


async def send_controls(stores: ErasureStores, control: ErasureControl, partitions: set[int]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=stores.bootstrap, acks="all")
    await producer.start()
    try:
        topic = PRIVACY_ERASURES.name_in(stores.namespace)
        value = PRIVACY_ERASURES.codec.encode(control)
        for partition in sorted(partitions):
            await producer.send_and_wait(
                topic, value, encode_key(str(control.erasure_id)), partition=partition
            )
    finally:
        await producer.stop()


async def await_acks(
    stores: ErasureStores,
    erasure_id: UUID,
    enough: Callable[[list[ErasureAck]], bool],
    timeout_s: float,
) -> list[ErasureAck]:
    """The erasure's acknowledgements so far, once `enough` holds or `timeout_s` passed (whichever first)."""
    return await _records_of(
        stores, PRIVACY_ERASURE_ACKS, lambda ack: ack.erasure_id == erasure_id, enough, timeout_s
    )


async def _records_of(
    stores: ErasureStores,
    spec: TopicSpec,
    wanted: Callable[[Any], bool],
    enough: Callable[[list[Any]], bool],
    timeout_s: float,
) -> list[Any]:
    """The `wanted` records of a one-partition topic, read from its start, once `enough` holds or `timeout_s`
    passed (whichever first)."""
    tp = TopicPartition(spec.name_in(stores.namespace), 0)
    reader = AIOKafkaConsumer(bootstrap_servers=stores.bootstrap, enable_auto_commit=False)
    await reader.start()
    found: list[Any] = []
    try:
        reader.assign([tp])
        await reader.seek_to_beginning(tp)
        deadline = time.monotonic() + timeout_s
        while True:
            batch = await reader.getmany(tp, timeout_ms=500)
            for record in batch.get(tp, []):
                try:
                    value = spec.codec.decode(record.value)
                except CodecError:
                    continue  # another version's record: not the one waited for
                if wanted(value):
                    found.append(value)
            caught_up = await reader.position(tp) >= (await reader.end_offsets([tp]))[tp]
            if caught_up and (enough(found) or time.monotonic() >= deadline):
                return found
    finally:
        await reader.stop()


def acked(acks: list[ErasureAck], component: ErasureComponent) -> dict[int, int]:
    """Partition -> what the component removed there, for the partitions it acknowledged."""
    return {ack.partition: ack.removed for ack in acks if ack.component == component}


# --- the steps ----------------------------------------------------------------------------------------------


@dataclass
class _Run:
    stores: ErasureStores
    erasure: Erasure
    # Partitions this run sent a control record to: each is sent once per run.
    sent: set[int] = field(default_factory=set)

    @property
    def user_id(self) -> str:
        assert self.erasure.user_id is not None, "a running erasure knows its user"
        return self.erasure.user_id

    async def acknowledged(self, component: ErasureComponent, partitions: frozenset[int]) -> int:
        """Send the control record where the component has not acknowledged it, wait for its acks."""
        control = ErasureControl(erasure_id=self.erasure.erasure_id, user_id=self.user_id)
        timeout = self.stores.ack_timeout_s
        have = acked(await await_acks(self.stores, control.erasure_id, lambda _: True, 0), component)
        missing = set(partitions) - set(have)
        if component == ErasureComponent.processors and ErasureStep.analytics in self.erasure.remaining:
            missing.add(ANALYTICS_PARTITION)  # the sinks read the same record, sent once for both
        missing -= self.sent
        await send_controls(self.stores, control, missing)
        self.sent |= missing
        acks = await await_acks(
            self.stores, control.erasure_id, lambda a: partitions <= set(acked(a, component)), timeout
        )
        done = acked(acks, component)
        if not partitions <= set(done):
            waiting = sorted(partitions - set(done))
            raise ErasureIncomplete(
                f"{component.value}: no acknowledgement from partition(s) {waiting} within {timeout:.0f} s"
                " (is it running?); run the erasure again to resume"
            )
        return sum(done[p] for p in partitions)


async def _tables(run: _Run) -> int:
    return await run.acknowledged(ErasureComponent.processors, PARTITIONS)


async def _analytics(run: _Run) -> int:
    return await run.acknowledged(ErasureComponent.analytics, frozenset({ANALYTICS_PARTITION}))


def _id_pattern(user_id: str) -> str:
    """A PostgreSQL regular expression matching the id as a whole word (not inside a longer number)."""
    return rf"\m{user_id}\M"


async def _postgres(run: _Run) -> int:
    async with run.stores.pool.acquire() as conn, conn.transaction():
        deleted = await conn.execute("DELETE FROM agent_user_relationships WHERE user_id = $1", run.user_id)
        exported = await conn.execute("DELETE FROM data_exports WHERE user_id = $1", run.user_id)
        redacted = await conn.execute(
            "UPDATE owner_notifications SET message = regexp_replace(message, $1, $2, 'g')"
            " WHERE message ~ $1",
            _id_pattern(run.user_id),
            ERASED_USER,
        )
    return _count(deleted) + _count(exported) + _count(redacted)


def _count(status: str) -> int:
    """The row count of a command's status ("DELETE 3", "UPDATE 1")."""
    return int(status.rsplit(" ", 1)[-1])


async def _user_keys_in_redis(redis: Redis, user_id: str) -> list[bytes]:
    return [key async for key in redis.scan_iter(match=f"*{user_id}*", count=1000)]


async def _redis(run: _Run) -> int:
    redis = run.stores.redis
    keys = await _user_keys_in_redis(redis, run.user_id)
    for prefix in run.stores.cache_prefixes:
        keys += [key async for key in redis.scan_iter(match=f"{prefix}*", count=1000)]
    return int(await redis.delete(*keys)) if keys else 0


async def _memories(run: _Run) -> int:
    return await run.stores.memories.erase_person(run.user_id)


def parquet_files(directory: Path) -> Iterator[Path]:
    return iter(sorted(directory.rglob("*.parquet")) if directory.is_dir() else [])


def naming(table: pa.Table, user_id: str) -> pa.ChunkedArray | pa.Array:
    """Per row: whether any text column holds the user's id (their events carry it as author or mention)."""
    hit: pa.ChunkedArray | pa.Array = pa.array([False] * table.num_rows)
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            hit = pc.or_(hit, pc.fill_null(pc.match_substring_regex(column, id_pattern(user_id)), False))
    return hit


def _rewrite_parquet(directory: Path, user_id: str) -> int:
    removed = 0
    for path in parquet_files(directory):
        table = pq.ParquetFile(path).read()
        hit = naming(table, user_id)
        count = int(pc.sum(hit).as_py() or 0)
        if count:
            # Written beside and renamed over: a crash leaves the old file or the new, never half of one.
            partial = path.with_suffix(".erasing")
            pq.write_table(table.filter(pc.invert(hit)), partial)
            os.replace(partial, path)
            removed += count
    return removed


async def _parquet(run: _Run) -> int:
    return await asyncio.to_thread(_rewrite_parquet, run.stores.parquet_dir, run.user_id)


async def _keys(run: _Run) -> int:
    return await run.stores.user_keys.destroy_user_keys(run.user_id)


STEPS: dict[ErasureStep, Callable[[_Run], Awaitable[int]]] = {
    ErasureStep.tables: _tables,
    ErasureStep.analytics: _analytics,
    ErasureStep.postgres: _postgres,
    ErasureStep.redis: _redis,
    ErasureStep.memories: _memories,
    ErasureStep.parquet: _parquet,
    ErasureStep.keys: _keys,
}


def _lock_key(erasure_id: UUID) -> int:
    """A signed 64-bit advisory lock key for the erasure."""
    return int.from_bytes(erasure_id.bytes[:8], "big", signed=True)


@asynccontextmanager
async def _running(dsn: str, erasure_id: UUID) -> AsyncIterator[bool]:
    """Whether this process holds the erasure's lock, on a connection of its own (not to keep one of a
    pool for minutes); the lock goes with the connection when it closes or its process dies."""
    conn = await asyncpg.connect(dsn)
    try:
        yield bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", _lock_key(erasure_id)))
    finally:
        await conn.close()


async def run_erasure(
    stores: ErasureStores,
    erasure_id: UUID,
    actor: str,
    on_step: Callable[[StepRecord], None] | None = None,
) -> Erasure:
    """Do the erasure's remaining steps and finish it; returns it as it stands. Another process running it
    already: returns it as it stands now (still running)."""
    ledger = ErasureLedger(stores.pool)
    erasure = await ledger.get(erasure_id)
    if erasure is None:
        raise KeyError(f"erasure_id: no erasure {erasure_id}")
    async with _running(stores.postgres_dsn, erasure_id) as held:
        erasure = await ledger.get(erasure_id)
        assert erasure is not None
        if not held or erasure.status == ErasureStatus.done:
            return erasure
        run = _Run(stores, erasure)
        for step in erasure.remaining:
            removed = await STEPS[step](run)
            await ledger.step_done(erasure_id, step, removed)
            run.erasure = await ledger.get(erasure_id) or erasure
            if on_step is not None:
                on_step(run.erasure.steps[-1])
        await ledger.finish(run.erasure, actor)
    finished = await ledger.get(erasure_id)
    assert finished is not None
    return finished


class ErasureRunner:
    """Runs erasures in the background of a long-lived process (the API): one task per erasure in this
    process; an erasure that stopped short (a component did not acknowledge) is resumed by the next request
    for the user, or when the process starts again."""

    def __init__(self, stores: ErasureStores) -> None:
        self.stores = stores
        self.ledger = ErasureLedger(stores.pool)
        self._tasks: dict[UUID, asyncio.Task[Erasure]] = {}
        # Erasures run a few at a time; the others wait their turn (each holds a connection and consumers).
        self._slots = asyncio.Semaphore(RUNNING_AT_ONCE)

    async def request(self, user_id: str, actor: str) -> Erasure:
        """The user's running erasure (a new one when none runs), started here unless it already runs."""
        erasure, _ = await self.ledger.request(user_id, actor)
        self.start(erasure.erasure_id, actor)
        return erasure

    def start(self, erasure_id: UUID, actor: str) -> None:
        task = self._tasks.get(erasure_id)
        if task is None or task.done():
            task = asyncio.create_task(self._run(erasure_id, actor), name=f"erasure-{erasure_id}")
            self._tasks[erasure_id] = task

    async def _run(self, erasure_id: UUID, actor: str) -> Erasure:
        try:
            async with self._slots:
                return await run_erasure(self.stores, erasure_id, actor)
        except Exception:
            log.exception("erasure %s stopped short; requesting it again resumes it", erasure_id)
            raise

    async def resume_unfinished(self, actor: str) -> None:
        for erasure_id in await self.ledger.unfinished():
            self.start(erasure_id, actor)

    async def close(self) -> None:
        await cancel_until_done(list(self._tasks.values()))


# --- the access export --------------------------------------------------------------------------------------


async def _existing_topics(bootstrap: str) -> set[str]:
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await reader.start()
    try:
        return set(await reader.topics())
    finally:
        await reader.stop()


async def _table_entries(
    stores: ErasureStores, user_id: str, existing: set[str]
) -> dict[str, dict[str, Any]]:
    """The processors' table entries holding something of the user, read from the changelogs (all at once)."""
    app_id = f"{stores.namespace}{stores.processors_app_id}"
    models: dict[str, type[BaseModel]] = dict(TABLE_MODELS)
    for heads, slots, layout in RING_TABLES.values():
        models.update({heads: layout.head_model, slots: layout.slot_model})
    topics = {table: changelog_topic(app_id, table) for table in models}
    read = await read_compacted_topics(
        stores.bootstrap, {topic: set(PARTITIONS) for topic in topics.values() if topic in existing}
    )

    def latest(table: str) -> dict[str, Any]:
        adapter: TypeAdapter[Any] = TypeAdapter(models[table])
        records = read.get(topics[table], {})
        return {key: adapter.validate_json(raw) for key, raw in records.items() if raw is not None}

    found: dict[str, dict[str, Any]] = {}
    for table in TABLE_MODELS:
        found.update(held_about(((table, key, value) for key, value in latest(table).items()), user_id))
    # A ring's values are its heads' lists, read back from the slots as the processors read them.
    for table, (heads, slots, layout) in RING_TABLES.items():
        ring = layout.over(latest(heads), latest(slots))
        found.update(held_about(((table, key, value) for key, value in ring.items()), user_id))
    return found


async def _postgres_rows(pool: asyncpg.Pool, user_id: str) -> dict[str, list[dict[str, Any]]]:
    queries = {
        "agent_user_relationships": ("SELECT * FROM agent_user_relationships WHERE user_id = $1", user_id),
        "owner_notifications": ("SELECT * FROM owner_notifications WHERE message ~ $1", _id_pattern(user_id)),
    }
    rows: dict[str, list[dict[str, Any]]] = {}
    for table, (query, argument) in queries.items():
        found = [_json_row(dict(row)) for row in await pool.fetch(query, argument)]
        if found:
            rows[table] = found
    return rows


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(orjson.dumps(row, default=str))
    return loaded


async def _redis_values(redis: Redis, user_id: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for key in await _user_keys_in_redis(redis, user_id):
        kind = _text(await redis.type(key))
        value: Any = {
            "string": redis.get,
            "hash": redis.hgetall,
            "set": redis.smembers,
            "list": lambda k: redis.lrange(k, 0, -1),
        }.get(kind, redis.type)(key)
        values[_text(key)] = repr(await value)
    return values


def _text(raw: bytes | str) -> str:
    return raw.decode(errors="replace") if isinstance(raw, bytes) else raw


async def _opened_row(row: dict[str, Any], keys: DataKeys) -> dict[str, Any]:
    """A Parquet row with its sealed parts opened into its data, those whose keys remain."""
    if not row.get("sealed") or not row.get("data"):
        return row
    column = orjson.loads(row["sealed"])
    data = orjson.loads(row["data"])
    for raw in [column.get("sealed"), *column.get("sealed_references", [])]:
        part = SealedData.model_validate(raw) if raw else None
        key = await keys.data_key_by_id(part.key_id) if part is not None else None
        if part is not None and key is not None:
            data.update(open_fields(key, row["event_id"], part))
    return row | {"data": orjson.dumps(data).decode(), "sealed": None}


async def _parquet_rows(stores: ErasureStores, user_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in parquet_files(stores.parquet_dir):
        table = await asyncio.to_thread(pq.read_table, path, partitioning=None)
        for row in table.to_pylist():
            opened = _json_row(await _opened_row(row, stores.user_keys))
            if names_user(orjson.dumps(opened).decode(), user_id):
                rows.append(opened | {"file": str(path)})
    return rows


async def _events(stores: ErasureStores, user_id: str) -> list[dict[str, Any]]:
    """The events on `discord.events` that carry the user's id (as author, mention or member) once opened
    with the data keys that remain."""
    found: list[dict[str, Any]] = []
    async for raw in every_record(stores.bootstrap, DISCORD_EVENTS.name_in(stores.namespace)):
        opened = await _opened_event(raw, stores.user_keys)
        if opened is not None and names_user(orjson.dumps(opened["data"]).decode(), user_id):
            found.append(opened)
    return found


async def _opened_event(raw: bytes | None, keys: DataKeys) -> dict[str, Any] | None:
    """The event opened; None when it cannot be read or its subject was erased."""
    try:
        envelope = DISCORD_EVENTS.codec.decode(raw) if raw is not None else None
        opened = await open_envelope(envelope, keys) if envelope is not None else None
    except CodecError:
        return None  # unreadable records are the processors' dead letters
    return opened.model_dump(mode="json") if opened is not None else None


async def _analytics_rows(stores: ErasureStores, user_id: str) -> dict[str, list[dict[str, Any]]]:
    """ClickHouse's rows naming the user, asked of the sinks process that holds ClickHouse."""
    request = AnalyticsExportRequest(export_id=uuid4(), user_id=user_id)
    # Sealed under the user's key; a user without one (erased, or never seen) gets none made for an export:
    # the platform holds nothing sealed of them, and the request goes clear.
    held = await stores.user_keys.holds_key(user_id)
    sealed = await seal_payload(request, PRIVACY_EXPORTS.sealing, stores.user_keys) if held else request
    producer = AIOKafkaProducer(bootstrap_servers=stores.bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            PRIVACY_EXPORTS.name_in(stores.namespace),
            PRIVACY_EXPORTS.codec.encode(sealed),
            encode_key(str(request.export_id)),
        )
    finally:
        await producer.stop()
    answers = await _records_of(
        stores, PRIVACY_EXPORT_ANSWERS, lambda a: a.export_id == request.export_id, bool, stores.ack_timeout_s
    )
    if not answers:
        raise ExportIncomplete(
            f"analytics: the sinks process did not answer within {stores.ack_timeout_s:.0f} s"
            " (is it running?)"
        )
    answer = await open_payload(answers[0], PRIVACY_EXPORT_ANSWERS.sealing, stores.user_keys)
    if answer is None:
        raise ExportIncomplete("analytics: the user was erased while the export ran")
    return answer.rows


async def export_user_data(stores: ErasureStores, user_id: str, actor: str) -> UserDataExport:
    """Everything the platform holds about the user, by store (audited: who exported whom, not the data)."""
    existing = await _existing_topics(stores.bootstrap)
    export = UserDataExport(
        user_id=user_id,
        tables=await _table_entries(stores, user_id, existing),
        postgres=await _postgres_rows(stores.pool, user_id),
        redis=await _redis_values(stores.redis, user_id),
        memories=[m.model_dump(mode="json") for m in await stores.memories.about_person(user_id)],
        parquet=await _parquet_rows(stores, user_id),
        events=await _events(stores, user_id) if DISCORD_EVENTS.name_in(stores.namespace) in existing else [],
        analytics=await _analytics_rows(stores, user_id),
    )
    await ErasureLedger(stores.pool).audit(None, user_id, actor, "exported")
    return export
