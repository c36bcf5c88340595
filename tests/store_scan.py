"""Scanning every store of a platform for one person: their id (as a whole number) and their words, in the
bytes each store holds and, where a store holds sealed records, in what the records open to with the data
keys that remain. Each hit says where it is (store, topic or table, field), so a failing scan names the gap.

One function per store; each returns the hits, the caller asserts there are none (or that some are there,
before an erasure)."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import clickhouse_connect
import orjson
import pyarrow.parquet as pq
from aiokafka import AIOKafkaConsumer
from clickhouse_connect.driver.client import Client
from pydantic import BaseModel
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from weaviate import WeaviateAsyncClient

from jobs.parquet import table_envelopes
from memory.store import COLLECTION
from models.events import EventEnvelope
from settings import REPO_ROOT
from streams.catalog import CATALOG
from streams.codec import CodecError
from streams.sealing import DataKeys, open_envelope, open_payload
from tests.stored_records import stored_records


@dataclass(frozen=True)
class Hit:
    store: str
    where: str  # topic, table, key or file
    field: str  # which part of the record: its key, its bytes, the opened record
    needle: str

    def __str__(self) -> str:
        return f"{self.store} {self.where} ({self.field}): {self.needle!r}"


@dataclass(frozen=True)
class Person:
    """What identifies a person's data: their id, and words of theirs no one else said."""

    user_id: str
    texts: tuple[str, ...]

    def found_in(self, text: str) -> list[str]:
        """The needles in `text`: the id where no digit touches it, and each text."""
        id_hit = re.search(rf"(^|[^0-9]){re.escape(self.user_id)}([^0-9]|$)", text)
        return ([self.user_id] if id_hit else []) + [t for t in self.texts if t in text]


def _hits(person: Person, store: str, where: str, field: str, text: str) -> list[Hit]:
    return [Hit(store, where, field, needle) for needle in person.found_in(text)]


def _text(raw: bytes | str | None) -> str:
    if raw is None:
        return ""
    return raw.decode(errors="replace") if isinstance(raw, bytes) else raw


def _json(value: Any) -> str:
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return orjson.dumps(value, default=str).decode()


async def namespace_topics(bootstrap: str, namespace: str) -> list[str]:
    """Every topic of the namespace on the broker, the processors' changelogs included."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return sorted(t for t in await consumer.topics() if t.startswith(namespace))
    finally:
        await consumer.stop()


# The field of a hit in a record opened with the keys that remain. Once the person's keys are destroyed (a
# PostgreSQL scan finds no `user_data_keys` row of theirs), such a hit is in a record sealed under another
# person's key: someone else's words naming them (docs/DATA.md, "Not reached").
OPENED = "opened"


async def scan_topics(
    bootstrap: str,
    namespace: str,
    person: Person,
    keys: DataKeys,
    skip: Iterable[str] = (),
) -> list[Hit]:
    """Every record of every topic of the namespace but `skip` (names without the namespace), the
    processors' changelogs included, from offset 0 (a compacted topic's superseded values and deletion
    markers too, until the cleaner removed them): its key and value as stored, and, on a catalog topic, its
    value decoded and opened with `keys` (an erased subject's record opens to nothing)."""
    specs = {spec.name_in(namespace): spec for spec in CATALOG}
    skipped = {f"{namespace}{name}" for name in skip}
    topics = [topic for topic in await namespace_topics(bootstrap, namespace) if topic not in skipped]
    hits: list[Hit] = []
    for record in await stored_records(bootstrap, topics):
        where = f"{record.topic}[{record.partition}]@{record.offset}"
        hits += _hits(person, "kafka", where, "key", _text(record.key))
        hits += _hits(person, "kafka", where, "value as stored", _text(record.value))
        spec = specs.get(record.topic)
        if spec is None or record.value is None:
            continue
        try:
            decoded = spec.codec.decode(record.value)
        except CodecError:
            continue  # another version's record: its bytes were scanned above
        opened = (
            await open_envelope(decoded, keys)
            if isinstance(decoded, EventEnvelope)
            else await open_payload(decoded, spec.sealing, keys)
        )
        if opened is not None:
            hits += _hits(person, "kafka", where, OPENED, _json(opened))
    return hits


async def scan_postgres(dsn: str, schema: str, person: Person) -> list[Hit]:
    """Every row of every table of the schema, all columns as text."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
            schema,
        )
        hits: list[Hit] = []
        for row in tables:
            table = row["table_name"]
            for found in await conn.fetch(f'SELECT t::text AS row FROM "{schema}"."{table}" t'):
                hits += _hits(person, "postgres", f"{schema}.{table}", "row", found["row"])
        return hits
    finally:
        await conn.close()


# How each kind of Redis value is read whole, queued on a pipeline (any other kind is dumped).
REDIS_READS: dict[str, Callable[[Pipeline, bytes], Any]] = {
    "string": lambda pipe, key: pipe.get(key),
    "hash": lambda pipe, key: pipe.hgetall(key),
    "set": lambda pipe, key: pipe.smembers(key),
    "zset": lambda pipe, key: pipe.zrange(key, 0, -1, withscores=True),
    "list": lambda pipe, key: pipe.lrange(key, 0, -1),
}


async def scan_redis(redis: Redis, person: Person) -> list[Hit]:
    """Every key of the Redis database (it is shared: the person's id and words are theirs alone) and its
    value. Keys are typed and read a SCAN batch at a time, each step one pipelined round trip: the database
    holds what every test left, tens of thousands of keys."""
    hits: list[Hit] = []
    cursor = 0
    while True:
        cursor, keys = await redis.scan(cursor, count=1000)
        async with redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.type(key)
            kinds = [_text(kind) for kind in await pipe.execute()]
            for key, kind in zip(keys, kinds, strict=True):
                REDIS_READS.get(kind, lambda pipe, key: pipe.dump(key))(pipe, key)
            values = await pipe.execute()
        for key, kind, value in zip(keys, kinds, values, strict=True):
            name = _text(key)
            hits += _hits(person, "redis", name, "key", name)
            shown = _text(value) if kind == "string" else repr(value)
            hits += _hits(person, "redis", name, f"{kind} value", shown)
        if cursor == 0:
            return hits


async def scan_memories(client: WeaviateAsyncClient, tenants: Iterable[UUID], person: Person) -> list[Hit]:
    """Every long-term memory of the deployments' tenants (those with memory have one), every property."""
    collection = client.collections.use(COLLECTION)
    existing = set(await collection.tenants.get())
    hits: list[Hit] = []
    for tenant in (t for t in tenants if str(t) in existing):
        async for obj in collection.with_tenant(str(tenant)).iterator():
            where = f"{COLLECTION}/{tenant}/{obj.uuid}"
            hits += _hits(person, "weaviate", where, "properties", _json(obj.properties))
    return hits


async def scan_parquet(directory: Path, person: Person, keys: DataKeys) -> list[Hit]:
    """Every row of every Parquet file under the directory, as stored and with its sealed parts opened."""
    hits: list[Hit] = []
    for path in await asyncio.to_thread(lambda: sorted(directory.rglob("*.parquet"))):
        table = await asyncio.to_thread(pq.read_table, path, partitioning=None)
        for n, row in enumerate(table.to_pylist()):
            hits += _hits(person, "parquet", f"{path}#{n}", "row as stored", _json(row))
        for n, envelope in enumerate(table_envelopes(table)):
            opened = await open_envelope(envelope, keys)
            if opened is not None:
                hits += _hits(person, "parquet", f"{path}#{n}", OPENED, _json(opened))
    return hits


def scan_clickhouse(client: Client, database: str, person: Person, before: Mapping[str, str]) -> list[Hit]:
    """Every row of every table of the database, every column as text (but aggregate states: hashes and
    counts, which cannot hold a value); in a table named in `before` (table -> condition), only the rows
    meeting the condition."""
    hits: list[Hit] = []
    columns = client.query(
        "SELECT table, name FROM system.columns WHERE database = {db:String}"
        " AND type NOT LIKE 'AggregateFunction%' AND type NOT LIKE 'SimpleAggregateFunction%'"
        " ORDER BY table, position",
        parameters={"db": database},
    )
    by_table: dict[str, list[str]] = {}
    for table, name in columns.result_rows:
        by_table.setdefault(table, []).append(f"toString(`{name}`)")
    for table, texts in by_table.items():
        condition = before.get(table, "1")
        rows = client.query(f"SELECT {', '.join(texts)} FROM `{database}`.`{table}` WHERE {condition}")
        for row in rows.result_rows:
            hits += _hits(person, "clickhouse", f"{database}.{table}", "row", _json(row))
    return hits


async def scan_clickhouse_at(
    path: Path, database: str, person: Person, before: Mapping[str, str]
) -> list[Hit]:
    """`scan_clickhouse` on the embedded engine at `path`, in a process of its own: a process opens one
    engine path only, and a test session has its own."""
    asked = {"path": str(path), "database": database, "person": dataclasses.asdict(person), "before": before}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.store_scan",
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate(orjson.dumps(asked))
    if process.returncode != 0:
        raise RuntimeError(f"the ClickHouse scan failed: {err.decode(errors='replace')[-2000:]}")
    return [Hit(**hit) for hit in orjson.loads(out)]


if __name__ == "__main__":
    asked = orjson.loads(sys.stdin.buffer.read())
    person = Person(asked["person"]["user_id"], tuple(asked["person"]["texts"]))
    engine = clickhouse_connect.get_client(interface="chdb", path=asked["path"])
    found = scan_clickhouse(engine, asked["database"], person, asked["before"])
    sys.stdout.buffer.write(orjson.dumps([dataclasses.asdict(hit) for hit in found]))
