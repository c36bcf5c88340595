"""The `stack` marker kept honest: a test that requests a fixture of the running stack but is not marked
`stack` fails, so `pytest -m "not stack"` never selects a test that needs Kafka, PostgreSQL, Redis or a
server."""

from __future__ import annotations

import pytest

# The fixtures of tests/conftest.py and tests/*/conftest.py that reach Kafka, PostgreSQL, Redis or the
# ClickHouse engine's state, or start a server or a process. A fixture of a test module with one of these
# names counts as well: the names are the suite's vocabulary for the stack.
STACK_FIXTURES = frozenset(
    {
        # tests/conftest.py
        "stack_up",
        # Kafka topic namespaces and clients
        "namespace",
        "producer",
        "produce",
        "collector",
        "worker",
        "runners",
        # PostgreSQL schemas and the API over them
        "pg_dsn",
        "schema_dsn",
        "pool",
        "api_settings",
        "client",
        "admin_key",
        "new_owner",
        "add_token",
        # Redis
        "redis",
        "redis_client",
        "key_prefix",
        # ClickHouse with state
        "clickhouse",
        "database",
        # servers: the Discord emulator and the demo
        "emulator",
        "control",
        "seeded",
        "new_bot",
        "world",
        "demo",
    }
)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture is set up, so an unmarked test fails at once instead of waiting on a closed port."""
    if item.get_closest_marker("stack") is not None or not isinstance(item, pytest.Function):
        return
    # A parametrize argument is a value, not a fixture, whatever its name.
    values = item.callspec.params if hasattr(item, "callspec") else {}
    used = sorted(STACK_FIXTURES.intersection(item.fixturenames).difference(values))
    if used:
        pytest.fail(
            f"{item.nodeid} uses {', '.join(used)}, which need the running stack: mark the test "
            "@pytest.mark.stack (or its module: pytestmark = pytest.mark.stack)",
            pytrace=False,
        )
