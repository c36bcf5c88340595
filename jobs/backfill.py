"""Backfill: rebuild the relationship and mood tables from history.

The events are re-run through the processors' Engine (jobs/rerun.py), so a rebuilt relationship is exactly
what processing the same events incrementally gives: the relationship and mood functions run where the
processors run them, after the same routing, decisions and context. The rebuilt state goes to:

- PostgreSQL's `agent_user_relationships`: durable, queryable by the API and reached by user erasure.
  Rows are upserted per (deployment, user); deployments PostgreSQL does not know are skipped (the foreign
  key), and counted.
- optionally the processors' own tables, written as their Faust changelog topics `<app id>-relationships-
  changelog` and `<app id>-moods-changelog`, on the partition of each key's events, as a worker writes them.
  A worker reads its changelogs only when it recovers, so this is refused while the app's consumer group
  has members: stop the workers (or choose a new app id), backfill, start them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar
from uuid import UUID

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import NewTopic
from pydantic import BaseModel

from jobs.rerun import Rerun, RerunStats
from jobs.timeline import TimeWindow
from models.state import MoodState, Relationship
from models.table_keys import MoodKey, RelationshipKey, TableKey
from processors.table_catalog import changelog_topic
from processors.tables import ModelCodec
from streams.catalog import GUILD_PARTITIONS
from streams.codec import encode_key
from streams.history import KafkaTools, Track, no_progress
from streams.sealing import DataKeys

V = TypeVar("V", bound=BaseModel)

_UPSERT_RELATIONSHIP = """
INSERT INTO agent_user_relationships (
    deployment_id, user_id, affinity_score, interaction_count, positive_interactions,
    negative_interactions, last_interaction, preferences, first_met, updated_at
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, coalesce($9, now()), now())
ON CONFLICT (deployment_id, user_id) DO UPDATE SET
    affinity_score = EXCLUDED.affinity_score,
    interaction_count = EXCLUDED.interaction_count,
    positive_interactions = EXCLUDED.positive_interactions,
    negative_interactions = EXCLUDED.negative_interactions,
    last_interaction = EXCLUDED.last_interaction,
    preferences = EXCLUDED.preferences,
    first_met = EXCLUDED.first_met,
    updated_at = now()
"""


@dataclass
class BackfillReport:
    stats: RerunStats
    relationships: dict[str, Relationship]
    moods: dict[str, MoodState]
    written_to_postgres: int = 0
    # Relationships of deployments PostgreSQL does not know (deleted, or another environment's).
    unknown_deployments: set[UUID] = field(default_factory=set)
    changelog_records: int = 0


async def rebuild_state(
    bootstrap: str, namespace: str, window: TimeWindow, keys: DataKeys, *, track: Track = no_progress
) -> tuple[Rerun, BackfillReport]:
    rerun = Rerun(keys)
    stats = await rerun.run(bootstrap, namespace, window, track=track)
    tables = rerun.engine.tables
    return rerun, BackfillReport(stats, dict(tables.relationships), dict(tables.moods))


def per_deployment_user(relationships: Mapping[str, Relationship]) -> dict[tuple[UUID, str], Relationship]:
    """One relationship per deployment and user. The tables hold one per partition key, and a deployment that
    accepts DMs meets a user both in its guild and under `dm:<bot>`: the most recent interaction wins."""
    chosen: dict[tuple[UUID, str], Relationship] = {}
    for key, relationship in relationships.items():
        pair = (RelationshipKey.parse(key).deployment_id, relationship.user_id)
        held = chosen.get(pair)
        if held is None or _last(relationship) > _last(held):
            chosen[pair] = relationship
    return chosen


def _last(relationship: Relationship) -> datetime:
    return relationship.last_interaction or datetime.min.replace(tzinfo=UTC)


async def write_relationships(dsn: str, report: BackfillReport) -> None:
    """Upsert the rebuilt relationships into agent_user_relationships."""
    rows = per_deployment_user(report.relationships)
    conn = await asyncpg.connect(dsn)
    try:
        deployment_ids = sorted({deployment_id for deployment_id, _ in rows})
        known = {
            row["deployment_id"]
            for row in await conn.fetch(
                "SELECT deployment_id FROM agent_deployments WHERE deployment_id = ANY($1::uuid[])",
                deployment_ids,
            )
        }
        report.unknown_deployments = set(deployment_ids) - known
        values = [
            (
                deployment_id,
                r.user_id,
                r.affinity,
                r.interaction_count,
                r.positive_interactions,
                r.negative_interactions,
                r.last_interaction,
                orjson.dumps(r.preferences).decode(),
                r.first_met,
            )
            for (deployment_id, _), r in rows.items()
            if deployment_id in known
        ]
        async with conn.transaction():
            await conn.executemany(_UPSERT_RELATIONSHIP, values)
        report.written_to_postgres = len(values)
    finally:
        await conn.close()


async def _ensure_stopped(kafka: KafkaTools, group: str) -> None:
    (response,) = await kafka.coordinated(lambda: kafka.admin.describe_consumer_groups([group]))
    for described in response.groups:
        state, members = described[2], described[5]
        if members:
            raise RuntimeError(
                f"app {group!r} has {len(members)} running member(s) (group {state}): a running worker would "
                "not read the backfilled changelog and would overwrite it; stop its workers first"
            )


async def write_changelogs(
    bootstrap: str,
    namespace: str,
    app_id: str,
    rerun: Rerun,
    report: BackfillReport,
    *,
    track: Track = no_progress,
) -> None:
    """Write the rebuilt relationships and moods as records of the app's table changelogs."""
    rebuilt: tuple[tuple[type[TableKey], Mapping[str, BaseModel]], ...] = (
        (RelationshipKey, report.relationships),
        (MoodKey, report.moods),
    )
    topics = {key_type: changelog_topic(f"{namespace}{app_id}", key_type.TABLE) for key_type, _ in rebuilt}
    async with KafkaTools(bootstrap) as kafka:
        await _ensure_stopped(kafka, f"{namespace}{app_id}")
        missing = [name for name in topics.values() if name not in await kafka.admin.list_topics()]
        if missing:
            # As Faust creates them: compacted, one partition per partition of discord.events.
            config = {"cleanup.policy": "compact"}
            await kafka.admin.create_topics(
                [NewTopic(name, GUILD_PARTITIONS, 1, topic_configs=config) for name in missing]
            )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=20
    )
    await producer.start()
    try:
        advance = track("writing changelogs", len(report.relationships) + len(report.moods))
        for key_type, values in rebuilt:
            sent = await _send_table(producer, topics[key_type], key_type, values, rerun.partition_of_key)
            report.changelog_records += sent
            advance(len(values))
    finally:
        await producer.stop()


async def _send_table(
    producer: AIOKafkaProducer,
    topic: str,
    key_type: type[TableKey],
    values: Mapping[str, V],
    partition_of_key: Mapping[str, int],
) -> int:
    if not values:
        return 0
    codec: ModelCodec[V] = ModelCodec(type(next(iter(values.values()))))
    sent = []
    for key, value in values.items():
        partition = partition_of_key[key_type.parse(key).partition_key]
        sent.append(await producer.send(topic, codec.dumps(value), key=encode_key(key), partition=partition))
    for delivery in sent:
        await delivery
    return len(sent)
