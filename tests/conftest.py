"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient

# The embedded ClickHouse engine can be open in one process at a time: each test session gets its own,
# so a running demo, a sink or another session never holds the engine this one needs.
if not os.environ.get("CLICKHOUSE_URL"):
    os.environ["CLICKHOUSE_URL"] = f"chdb://{tempfile.mkdtemp(prefix='deep-test-chdb-')}"

from infra.stack import lifecycle as stack
from settings import Settings, get_settings

# Fails any test that uses a stack fixture without the `stack` marker.
pytest_plugins = ("tests.stack_marker",)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
async def stack_up(settings: Settings) -> Settings:
    """The native stack, started if needed (`make test` has normally started it already)."""
    results = await stack.up(settings)
    failed = [f"{r.name}: {r.detail}" for r in results if r.outcome is stack.Outcome.FAILED]
    if failed:
        pytest.fail("stack did not come up:\n" + "\n".join(failed))
    return settings


@pytest.fixture(scope="session")
async def admin(stack_up: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    """A Kafka admin client (group offsets, topics) shared by the session."""
    client = AIOKafkaAdminClient(bootstrap_servers=stack_up.kafka_bootstrap)
    await client.start()
    yield client
    await client.close()
