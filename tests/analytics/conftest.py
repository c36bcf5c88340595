"""Fixtures of the analytics tests: Kafka topics under a namespace and a ClickHouse database per module."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaProducer
from clickhouse_connect.driver.client import Client

from infra.stack.clickhouse import engine_holder, get_clickhouse_client
from settings import Settings
from sinks.clickhouse.schema import migrate
from sinks.tables import TOPIC_TABLES
from streams.catalog import CATALOG, TopicSpec, dead_letter_topic
from tests.kafka_namespace import temporary_namespace

# The topics the sinks process reads (each sink's, and the questions it answers: /stats, the console's
# analytics, erasures and exports) and answers on, each with its dead-letter topic.
SINK_TOPICS: tuple[TopicSpec, ...] = tuple(
    {
        topic.name: topic
        for spec in (
            *(spec for spec, _ in TOPIC_TABLES),
            *(spec for spec in CATALOG if "sinks" in (*spec.consumers, *spec.producers)),
        )
        for topic in ((spec,) if spec.name.startswith("deadletter.") else (spec, dead_letter_topic(spec)))
    }.values()
)


@pytest.fixture(scope="module")
async def namespace(stack_up: Settings) -> AsyncIterator[str]:
    async with temporary_namespace(stack_up.kafka_bootstrap, SINK_TOPICS) as ns:
        yield ns


@pytest.fixture(scope="session")
def clickhouse(stack_up: Settings) -> Client:
    holder = None if stack_up.clickhouse_url else engine_holder(stack_up.clickhouse_path)
    if holder is not None:
        pytest.fail(
            f"the embedded ClickHouse at {stack_up.clickhouse_path} is held by pid {holder} (another test "
            "session or `deep sinks`); run with CLICKHOUSE_URL=chdb:///tmp/<dir> for an engine of your own"
        )
    return get_clickhouse_client(stack_up)


@pytest.fixture(scope="module")
def database(clickhouse: Client) -> Iterator[str]:
    name = f"analytics_{uuid4().hex[:10]}"
    migrate(clickhouse, name)
    yield name
    clickhouse.command(f"DROP DATABASE IF EXISTS `{name}` SYNC")


@pytest.fixture(scope="module")
async def producer(stack_up: Settings) -> AsyncIterator[AIOKafkaProducer]:
    kafka = AIOKafkaProducer(bootstrap_servers=stack_up.kafka_bootstrap, linger_ms=5)
    await kafka.start()
    yield kafka
    await kafka.stop()
