"""Fixtures of the jobs and ops tests: a topic namespace per module (sandbox topics of replays included,
since they live under it), a producer, and a migrated PostgreSQL schema per module."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import uuid4

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from infra.migrate import migrate
from settings import Settings
from streams.catalog import (
    AGENT_DECISIONS,
    AGENT_DEPLOYMENTS,
    DEAD_LETTERS,
    DISCORD_EVENTS,
    INFERENCE_RESULTS,
    TopicSpec,
)
from tests.kafka_namespace import temporary_namespace

JOB_TOPICS: tuple[TopicSpec, ...] = (
    AGENT_DEPLOYMENTS,
    DISCORD_EVENTS,
    INFERENCE_RESULTS,
    AGENT_DECISIONS,
    DEAD_LETTERS[DISCORD_EVENTS.name],
)


@pytest.fixture(scope="module")
async def namespace(stack_up: Settings) -> AsyncIterator[str]:
    async with temporary_namespace(stack_up.kafka_bootstrap, JOB_TOPICS) as ns:
        yield ns


@pytest.fixture(scope="module")
async def producer(stack_up: Settings) -> AsyncIterator[AIOKafkaProducer]:
    kafka = AIOKafkaProducer(bootstrap_servers=stack_up.kafka_bootstrap, linger_ms=5, acks="all")
    await kafka.start()
    yield kafka
    await kafka.stop()


@pytest.fixture(scope="module")
async def pg_dsn(stack_up: Settings) -> AsyncIterator[str]:
    schema = f"t_jobs_{uuid4().hex[:10]}"
    conn = await asyncpg.connect(stack_up.postgres_dsn)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        dsn = f"{stack_up.postgres_dsn}?search_path={schema}"
        await migrate(dsn)
        yield dsn
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
