"""Backfill rebuilds relationships and moods from the history on Kafka exactly as processing the same events
incrementally left them, into PostgreSQL and into the processors' changelog topics."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import BaseModel

from jobs.backfill import (
    BackfillReport,
    per_deployment_user,
    rebuild_state,
    write_changelogs,
    write_relationships,
)
from jobs.rerun import Rerun
from jobs.timeline import TimeWindow
from models.common import utc_now
from models.state import MoodState, Relationship
from models.table_keys import MoodKey, RelationshipKey, TableKey
from processors.table_catalog import changelog_topic
from processors.tables import ModelCodec
from settings import Settings
from tests.data_keys import MemoryDataKeys
from tests.jobs.factories import (
    DEPLOYMENT_A,
    DEPLOYMENT_B,
    GUILD_A,
    RecordedRun,
    insert_deployment,
    produce_run,
    read_records,
    record_run,
)

pytestmark = pytest.mark.stack

START = utc_now().replace(microsecond=0) - timedelta(hours=2)
APP_ID = "deep-processors"


@pytest.fixture(scope="module")
async def recorded(stack_up: Settings, namespace: str, producer: AIOKafkaProducer) -> RecordedRun:
    run = record_run(START, 60)
    await produce_run(producer, namespace, run, routing_at=START - timedelta(minutes=1))
    return run


@pytest.fixture(scope="module")
async def rebuilt(stack_up: Settings, namespace: str, recorded: RecordedRun) -> tuple[Rerun, BackfillReport]:
    return await rebuild_state(stack_up.kafka_bootstrap, namespace, TimeWindow(), MemoryDataKeys())


async def test_backfill_rebuilds_what_incremental_processing_gives(
    recorded: RecordedRun, rebuilt: tuple[Rerun, BackfillReport]
) -> None:
    _, report = rebuilt
    assert report.stats.events == len(recorded.events)
    assert report.relationships == dict(recorded.tables.relationships)
    assert report.moods == dict(recorded.tables.moods)
    # Mentions and DMs made relationships, DMs taught preferences.
    assert len(report.relationships) >= 4
    assert any(r.preferences.get("likes") for r in report.relationships.values())


async def test_relationships_are_upserted_for_known_deployments(
    pg_dsn: str, recorded: RecordedRun, rebuilt: tuple[Rerun, BackfillReport]
) -> None:
    _, report = rebuilt
    conn = await asyncpg.connect(pg_dsn)
    try:
        await insert_deployment(conn, DEPLOYMENT_A, guild_id=GUILD_A)
        await write_relationships(pg_dsn, report)
        await write_relationships(pg_dsn, report)  # a second run updates the same rows
        rows = await conn.fetch("SELECT * FROM agent_user_relationships ORDER BY user_id")
    finally:
        await conn.close()
    assert report.unknown_deployments == {DEPLOYMENT_B}
    # Deployment A meets people in its guild and in DMs: one row per person, the latest interaction's.
    expected = {
        user: r
        for (deployment, user), r in per_deployment_user(report.relationships).items()
        if deployment == DEPLOYMENT_A
    }
    assert report.written_to_postgres == len(rows) == len(expected)
    for row in rows:
        relationship = expected[row["user_id"]]
        assert row["deployment_id"] == DEPLOYMENT_A
        assert row["affinity_score"] == relationship.affinity
        assert row["interaction_count"] == relationship.interaction_count
        assert row["last_interaction"] == relationship.last_interaction
        assert row["first_met"] == relationship.first_met


async def test_changelogs_hold_the_rebuilt_tables_on_each_keys_partition(
    stack_up: Settings, namespace: str, rebuilt: tuple[Rerun, BackfillReport]
) -> None:
    rerun, report = rebuilt
    await write_changelogs(stack_up.kafka_bootstrap, namespace, APP_ID, rerun, report)
    assert report.changelog_records == len(report.relationships) + len(report.moods)
    tables: tuple[tuple[type[TableKey], type[BaseModel], Mapping[str, BaseModel]], ...] = (
        (RelationshipKey, Relationship, report.relationships),
        (MoodKey, MoodState, report.moods),
    )
    for key_type, model, expected in tables:
        codec = ModelCodec(model)
        topic = changelog_topic(f"{namespace}{APP_ID}", key_type.TABLE)
        records = await read_records(stack_up.kafka_bootstrap, topic)
        assert {(r.key or b"").decode(): codec.loads(r.value) for r in records} == expected
        for record in records:
            key = key_type.parse((record.key or b"").decode())
            assert record.partition == rerun.partition_of_key[key.partition_key]


async def test_changelogs_are_refused_while_the_app_runs(
    stack_up: Settings, namespace: str, rebuilt: tuple[Rerun, BackfillReport]
) -> None:
    rerun, report = rebuilt
    worker = AIOKafkaConsumer(
        f"{namespace}discord.events",
        bootstrap_servers=stack_up.kafka_bootstrap,
        group_id=f"{namespace}{APP_ID}",
    )
    await worker.start()
    try:
        while not worker.assignment():  # joined the group once it holds partitions
            await worker.getmany(timeout_ms=100)
        with pytest.raises(RuntimeError, match="running member"):
            await write_changelogs(stack_up.kafka_bootstrap, namespace, APP_ID, rerun, report)
    finally:
        await worker.stop()
