"""The erasure job against the running stack: a processors worker (subprocess) holding a guild's tables, the
sinks' ClickHouse erasure (in process, on the session's own engine), PostgreSQL, Redis, Weaviate and a
Parquet export. One user's data is planted in every store beside another user's; the access export holds
every planted item; `deep users erase`, killed while it waits for the sinks, leaves its steps recorded and a
rerun completes the erasure without redoing one; afterwards no store holds the user, the other user's data is
untouched, and erasing again changes nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import asyncpg
import orjson
import pyarrow.parquet as pq
import pytest
from aiokafka import AIOKafkaProducer
from clickhouse_connect.driver.client import Client
from redis.asyncio import Redis

from api.schemas import OwnerCreate, Role
from api.store import create_owner
from infra.migrate import migrate
from infra.stack.clickhouse import get_clickhouse_client
from jobs.parquet import StoredEvent, events_table
from memory.store import MemoryStore, connect
from models.agent import AgentConfig
from models.erasure import ErasureStatus, ErasureStep, ExportStatus, UserDataExport
from models.memory import EMBEDDING_DIMENSIONS, MemoryKind, MemoryRecord
from models.table_keys import DirectoryKey, RoutingKey
from models.tiers import Tier
from ops.erasure import ErasureIncomplete, ErasureLedger, ErasureStores, export_user_data, run_erasure
from ops.exports import ExportLedger, ExportRunner
from processors.table_catalog import changelog_topic
from settings import REPO_ROOT, Settings
from sinks.clickhouse.schema import migrate as migrate_clickhouse
from sinks.consumer import TableWriter
from sinks.erasure import ErasureService, ExportService
from sinks.tables import EVENTS
from streams.catalog import DISCORD_EVENTS, GUILD_PARTITIONS, TopicSpec
from streams.history import every_record, read_compacted
from streams.sealing import seal_envelope
from tests.processors.conftest import Producer, Worker
from tests.processors.factories import (
    Where,
    deployed,
    envelope,
    guild_create,
    luna,
    message_event,
    routing,
    snowflake,
    user,
)
from tests.waiting import wait_until
from vault.keyring import KeyRing, generate_key_spec
from vault.user_keys import UserKeyStore

pytestmark = pytest.mark.stack

ERASED, OTHER = user(snowflake(), "erin"), user(snowflake(), "otto")
ERASED_ID, OTHER_ID = ERASED["id"], OTHER["id"]
SECRET = "my secret cat is called Biscuit"
# Said in an event that reaches the topic and the export sealed under the user's data key.
SEALED_SECRET = "my sealed diary says hello"
OTHERS_WORDS = "otto likes sailing on tuesdays"
WAIT_S = 60.0
VAULT_KEYS = generate_key_spec("k1")
# What two messages to a leveling Luna leave in the tables: the channel's context, XP and the board, and
# the floor's ruling on each message (which names its author).
PLANTED_TABLES = {"context", "levels", "leaderboards", "floor"}


@pytest.fixture(scope="module")
async def schema(stack_up: Settings) -> AsyncIterator[str]:
    """A PostgreSQL schema of the module's own, migrated."""
    name = f"t_erase_{uuid4().hex[:10]}"
    conn = await asyncpg.connect(stack_up.postgres_dsn)
    await conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        await migrate(f"{stack_up.postgres_dsn}?search_path={name}")
        yield name
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        await conn.close()


@pytest.fixture(scope="module")
async def pool(stack_up: Settings, schema: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(f"{stack_up.postgres_dsn}?search_path={schema}", min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
async def memories(stack_up: Settings) -> AsyncIterator[MemoryStore]:
    client = connect(stack_up)
    await client.connect()
    store = MemoryStore(client, f"TestErasure{uuid4().hex}")
    await store.ensure_collection()
    try:
        yield store
    finally:
        await client.collections.delete(store.name)
        await client.close()


@pytest.fixture(scope="module")
def clickhouse(stack_up: Settings) -> tuple[Client, str]:
    client = get_clickhouse_client(stack_up)
    database = f"erasure_{uuid4().hex[:10]}"
    migrate_clickhouse(client, database)
    return client, database


@pytest.fixture(scope="module")
async def stores(
    stack_up: Settings,
    schema: str,
    namespace: str,
    pool: asyncpg.Pool,
    memories: MemoryStore,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[ErasureStores]:
    redis = Redis.from_url(stack_up.redis_url)
    stores = ErasureStores(
        postgres_dsn=f"{stack_up.postgres_dsn}?search_path={schema}",
        pool=pool,
        redis=redis,
        memories=memories,
        user_keys=UserKeyStore(pool, KeyRing.parse(VAULT_KEYS)),
        bootstrap=stack_up.kafka_bootstrap,
        namespace=namespace,
        parquet_dir=tmp_path_factory.mktemp("exports"),
        cache_prefixes=(f"{namespace}cache:",),
        ack_timeout_s=WAIT_S,
    )
    try:
        yield stores
    finally:
        async for key in redis.scan_iter(match=f"{namespace}*"):
            await redis.delete(key)
        await redis.aclose()


@dataclasses.dataclass
class Sinks:
    """The sinks' ClickHouse services: the export's answers from the start, the erasure's when a test wants
    ClickHouse to erase."""

    service: ErasureService
    exports: ExportService
    tasks: list[asyncio.Task[None]] = dataclasses.field(default_factory=list)

    def start(self) -> None:
        self.tasks.append(asyncio.create_task(self.service.run()))


@pytest.fixture(scope="module")
async def sinks(
    stack_up: Settings, namespace: str, clickhouse: tuple[Client, str], stores: ErasureStores
) -> AsyncIterator[Sinks]:
    producer = AIOKafkaProducer(bootstrap_servers=stack_up.kafka_bootstrap)
    await producer.start()
    client, database = clickhouse
    answering = {"bootstrap": stack_up.kafka_bootstrap, "namespace": namespace, "producer": producer}
    exports = ExportService(client, database, keys=stores.user_keys, **answering)
    sinks = Sinks(ErasureService(client, database, **answering), exports)
    sinks.tasks.append(asyncio.create_task(sinks.exports.run()))
    try:
        yield sinks
    finally:
        sinks.service.stop()
        sinks.exports.stop()
        await asyncio.gather(*sinks.tasks, return_exceptions=True)
        await producer.stop()


def _leveling_luna() -> AgentConfig:
    data = luna().model_dump(mode="json")
    return AgentConfig.model_validate({**data, "enabled_tools": [*data["enabled_tools"], "leveling"]})


async def _plant(
    stores: ErasureStores, produce: Producer, clickhouse: tuple[Client, str]
) -> tuple[Where, list[str]]:
    """Both users' data in every store; returns where they talk and the ids of the erased user's events."""
    guild, channel, bot = snowflake(), snowflake(), snowflake()
    agent = deployed(_leveling_luna(), guild_id=guild, bot_id=bot, tier=Tier.pro)
    await produce.routing(routing(guild, agent))
    created = guild_create(guild, owner_id=snowflake(), channels={channel: "general"}, roles={})
    await produce.event(envelope("GUILD_CREATE", created, bot_id=bot, guild_id=guild))

    async def known() -> bool:
        # A message before the worker applied the guild's configuration and channels concerns no one.
        app_id = f"{stores.namespace}{stores.processors_app_id}"
        for table in (RoutingKey.TABLE, DirectoryKey.TABLE):
            topic = changelog_topic(app_id, table)
            if guild not in await read_compacted(stores.bootstrap, topic, set(range(GUILD_PARTITIONS))):
                return False
        return True

    await wait_until(known, "the worker to apply the guild's configuration and channels", timeout_s=WAIT_S)
    where = Where(bot_id=bot, guild_id=guild, channel_id=channel)
    events = [
        message_event(where, ERASED, f"luna, {SECRET}"),
        message_event(where, OTHER, f"luna, {OTHERS_WORDS}"),
    ]
    for event in events:
        await produce.event(event)
    sealed = await seal_envelope(message_event(where, ERASED, SEALED_SECRET), stores.user_keys)
    await produce.event(sealed)
    client, database = clickhouse
    TableWriter(client, database, EVENTS).insert_now([EVENTS.row(e) for e in events], token=None)

    owner = await create_owner(stores.pool, OwnerCreate(name="owner", tier=Tier.pro, role=Role.owner))
    for reporter in (ERASED_ID, OTHER_ID):
        await stores.pool.execute(
            "INSERT INTO owner_notifications (notification_id, owner_id, kind, message, at)"
            " VALUES ($1, $2, 'message_reported', $3, now())",
            uuid4().hex,
            owner.owner.owner_id,
            f"User {reporter} reported a message of Luna",
        )
    await stores.redis.set(f"{stores.namespace}session:{ERASED_ID}", SECRET)
    await stores.redis.set(f"{stores.namespace}session:{OTHER_ID}", OTHERS_WORDS)
    await stores.redis.set(f"{stores.namespace}cache:prompt-hash", SECRET)

    records = [
        MemoryRecord(
            deployment_id=agent.deployment.deployment_id,
            guild_id=guild,
            channel_id=channel,
            author_id=author,
            people=[ERASED_ID, OTHER_ID],
            text=text,
            at=event.received_at,
            kind=MemoryKind.observation,
            importance=5,
            source_event_id=event.event_id,
        )
        for author, text, event in ((ERASED_ID, SECRET, events[0]), (OTHER_ID, OTHERS_WORDS, events[1]))
    ]
    await stores.memories.add_tenant(agent.deployment.deployment_id)
    await stores.memories.write(records, [[0.1] * EMBEDDING_DIMENSIONS for _ in records])

    stored = [StoredEvent(e, 0, offset) for offset, e in enumerate([*events, sealed])]
    day = stores.parquet_dir / "day=2026-12-01"
    day.mkdir(parents=True)
    pq.write_table(events_table(stored), day / "part-0.parquet")
    return where, [events[0].event_id, sealed.event_id]


def _dumped(export: UserDataExport) -> str:
    return export.model_dump_json(exclude={"user_id"})


def _analytics_authors(clickhouse: tuple[Client, str]) -> set[str]:
    client, database = clickhouse
    return {row[0] for row in client.query(f"SELECT author_id FROM `{database}`.events").result_rows}


async def _topic_text(stores: ErasureStores, spec: TopicSpec) -> str:
    """Every record of the topic, raw, as one text."""
    topic = spec.name_in(stores.namespace)
    values = [value async for value in every_record(stores.bootstrap, topic)]
    return repr(values)


def _parquet_text(directory: Path) -> str:
    return "".join(
        orjson.dumps(pq.ParquetFile(path).read().to_pylist()).decode()
        for path in directory.rglob("*.parquet")
    )


def _erase_with_cli(stores: ErasureStores, schema: str, log_path: Path) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "DEEP_TOPIC_NAMESPACE": stores.namespace,
        "DEEP_POSTGRES_SCHEMA": schema,
        "DEEP_PARQUET_EXPORTS_DIR": str(stores.parquet_dir),
        "DEEP_TOKEN_KEYS": VAULT_KEYS,
    }
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-c", "from deep.cli import app; app()", "users", "erase", ERASED_ID],
            cwd=REPO_ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def test_erasure_reaches_every_store_resumes_and_keeps_the_others(
    tmp_path: Path,
    schema: str,
    worker: Worker,
    produce: Producer,
    stores: ErasureStores,
    sinks: Sinks,
    clickhouse: tuple[Client, str],
) -> None:
    where, erased_events = await _plant(stores, produce, clickhouse)

    async def exported() -> UserDataExport:
        return await export_user_data(stores, ERASED_ID, "test")

    async def tables_hold_the_user() -> bool:
        held = (await exported()).tables
        return set(held) >= PLANTED_TABLES

    await wait_until(tables_hold_the_user, "the worker's tables to hold the user", timeout_s=WAIT_S)
    export = await exported()
    text = _dumped(export)
    assert SECRET in orjson.dumps(export.tables["context"]).decode()
    assert {m["record"]["text"] for m in export.memories} == {SECRET, OTHERS_WORDS}  # took part in both
    assert [row["event_id"] for row in export.parquet] == erased_events
    assert SEALED_SECRET in orjson.dumps(export.parquet).decode()  # opened with the user's key
    assert {e["event_id"] for e in export.events} == set(erased_events)
    assert SEALED_SECRET in orjson.dumps(export.events).decode()
    assert len(export.postgres["owner_notifications"]) == 1
    assert f"{stores.namespace}session:{ERASED_ID}" in export.redis
    assert all(OTHER_ID not in key for key in export.tables["levels"])
    assert [row["author_id"] for row in export.analytics["events"]] == [ERASED_ID]  # ClickHouse's row
    assert SECRET in text

    # The same export as a background job with a status (the API's): done, with the same stores' records.
    runner = ExportRunner(stores)
    requested = await runner.request(ERASED_ID, "test")
    assert requested.status is ExportStatus.running and requested.data is None

    async def export_done() -> bool:
        now = await runner.ledger.get(requested.export_id)
        return now is not None and now.status is not ExportStatus.running

    await wait_until(export_done, "the background export to finish", timeout_s=WAIT_S)
    finished = await ExportLedger(stores.pool).get(requested.export_id)
    assert finished is not None and finished.status is ExportStatus.done and finished.data is not None
    assert set(finished.data.tables) >= PLANTED_TABLES and finished.data.analytics == export.analytics
    await runner.close()

    ledger = ErasureLedger(stores.pool)
    erasure, created = await ledger.request(ERASED_ID, "test")
    assert created
    # Requested again while it runs: the same erasure.
    assert (await ledger.request(ERASED_ID, "test again"))[0].erasure_id == erasure.erasure_id

    # `deep users erase` joins it; the sinks are not running, so it erases the tables and waits for
    # ClickHouse's acknowledgement: killed there, it leaves the tables recorded as done.
    cli = _erase_with_cli(stores, schema, tmp_path / "cli.log")
    try:

        async def tables_done() -> bool:
            erasure_now = await ledger.get(erasure.erasure_id)
            return erasure_now is not None and [s.step for s in erasure_now.steps] == [ErasureStep.tables]

        await wait_until(tables_done, "the CLI to erase the tables", timeout_s=WAIT_S)
    finally:
        cli.kill()
        cli.wait(10)
    stopped = await ledger.get(erasure.erasure_id)
    assert stopped is not None and stopped.status is ErasureStatus.running
    tables_record = stopped.steps[0]
    # A run that cannot get ClickHouse's answer stops short too, saying so.
    short = dataclasses.replace(stores, ack_timeout_s=1.0)
    with pytest.raises(ErasureIncomplete, match="analytics"):
        await run_erasure(short, erasure.erasure_id, "test")

    sinks.start()
    done = await run_erasure(stores, erasure.erasure_id, "test")

    assert done.status is ErasureStatus.done and done.user_id is None
    assert [s.step for s in done.steps] == list(ErasureStep)
    assert done.steps[0] == tables_record  # not redone
    assert dict((s.step, s.removed) for s in done.steps)[ErasureStep.keys] == 1
    after = await exported()
    assert after.tables == {} and after.postgres == {} and after.redis == {}
    assert after.memories == [] and after.parquet == [] and after.events != [] and after.analytics == {}
    # The erasure took the stored export too.
    assert await ExportLedger(stores.pool).get(requested.export_id) is None
    # The events stay in the topic: only those whose clear part names the user are still exported (the
    # sealed one is shredded), and no copy anywhere holds the sealed words in the clear.
    assert {e["event_id"] for e in after.events} == {erased_events[0]}
    assert SEALED_SECRET not in await _topic_text(stores, DISCORD_EVENTS)
    assert _analytics_authors(clickhouse) == {OTHER_ID}
    assert SECRET not in _parquet_text(stores.parquet_dir)
    assert SEALED_SECRET not in _parquet_text(stores.parquet_dir) and ERASED_ID not in _parquet_text(
        stores.parquet_dir
    )
    assert OTHERS_WORDS in _parquet_text(stores.parquet_dir)
    assert await stores.redis.get(f"{stores.namespace}cache:prompt-hash") is None
    notifications = [r["message"] for r in await stores.pool.fetch("SELECT message FROM owner_notifications")]
    assert sorted(notifications) == sorted(
        [f"User {OTHER_ID} reported a message of Luna", "User [erased user] reported a message of Luna"]
    )
    assert (
        await stores.pool.fetchval(
            "SELECT count(*) FROM erasures WHERE user_id IS NOT NULL OR requested_by LIKE $1",
            f"%{ERASED_ID}%",
        )
        == 0
    )

    # The other user keeps everything.
    kept = await export_user_data(stores, OTHER_ID, "test")
    assert set(kept.tables) >= PLANTED_TABLES
    assert OTHERS_WORDS in orjson.dumps(kept.tables["context"]).decode()
    assert [m["record"]["people"] for m in kept.memories] == [[OTHER_ID]]
    assert [row["author_id"] for row in kept.analytics["events"]] == [OTHER_ID]
    assert await stores.redis.get(f"{stores.namespace}session:{OTHER_ID}") is not None

    # The platform goes on: the worker still takes people's messages.
    later = "luna, still here after the erasure"
    await produce.event(message_event(where, OTHER, later))

    async def taken() -> bool:
        context = (await export_user_data(stores, OTHER_ID, "test")).tables.get("context", {})
        return later in orjson.dumps(context).decode()

    await wait_until(taken, "the worker to take a message after the erasure", timeout_s=WAIT_S)

    # Erasing again: a new erasure, every step done, nothing left to remove but the events' copies.
    again, created = await ledger.request(ERASED_ID, "test")
    assert created
    repeated = await run_erasure(stores, again.erasure_id, "test")
    assert repeated.status is ErasureStatus.done
    assert {s.step: s.removed for s in repeated.steps if s.step is not ErasureStep.tables} == {
        step: 0 for step in ErasureStep if step is not ErasureStep.tables
    }
    assert (await exported()).tables == {}
