from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from infra.migrate import MigrationError, load_migrations, migrate, pending
from settings import Settings

FOUNDATION_TABLES = {
    "owners",
    "api_keys",
    "agent_configurations",
    "bot_tokens",
    "agent_deployments",
    "agent_user_relationships",
    "usage_counters",
    "outbox",
    "token_access_audit",
    "schema_migrations",
}


def test_migrations_are_numbered_in_order() -> None:
    versions = [migration.version for migration in load_migrations()]
    assert versions[0] == "0001"
    assert versions == sorted(versions)


def test_pending_skips_applied_and_refuses_edited_history() -> None:
    migrations = load_migrations()
    first = migrations[0]
    assert pending(migrations, {}) == migrations
    assert first not in pending(migrations, {first.version: first.checksum})
    with pytest.raises(MigrationError):
        pending(migrations, {first.version: "edited"})


def test_badly_named_files_are_rejected(tmp_path: Path) -> None:
    (tmp_path / "1_init.sql").write_text("SELECT 1")
    with pytest.raises(MigrationError):
        load_migrations(tmp_path)


@pytest.fixture
async def scratch_dsn(stack_up: Settings) -> AsyncIterator[str]:
    """The stack's database through a fresh, empty schema (asyncpg sends unknown DSN params as settings)."""
    schema = f"test_migrate_{uuid.uuid4().hex}"
    conn = await asyncpg.connect(stack_up.postgres_dsn)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        yield f"{stack_up.postgres_dsn}?search_path={schema}"
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await conn.close()


async def tables_in(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    finally:
        await conn.close()
    return {row["table_name"] for row in rows}


@pytest.mark.stack
async def test_migrate_applies_once_then_nothing(scratch_dsn: str) -> None:
    everything = [migration.version for migration in load_migrations()]
    assert await migrate(scratch_dsn) == everything
    assert await migrate(scratch_dsn) == []
    assert await tables_in(scratch_dsn) >= FOUNDATION_TABLES


@pytest.mark.stack
async def test_concurrent_migrators_apply_each_version_once(scratch_dsn: str) -> None:
    first, second = await asyncio.gather(migrate(scratch_dsn), migrate(scratch_dsn))
    assert sorted(first + second) == [migration.version for migration in load_migrations()]


@pytest.mark.stack
async def test_stack_database_is_migrated(stack_up: Settings) -> None:
    await migrate(stack_up.postgres_dsn)
    assert await migrate(stack_up.postgres_dsn) == []
    assert await tables_in(stack_up.postgres_dsn) >= FOUNDATION_TABLES
