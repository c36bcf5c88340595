"""Forward-only PostgreSQL migrations: infra/postgres/migrations/NNNN_name.sql, applied once, in order."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import asyncpg

MIGRATIONS_DIR = Path(__file__).resolve().parent / "postgres" / "migrations"
FILE_PATTERN = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# One cluster-wide key: every migrator, whatever the database, queues on it, which is what we want.
ADVISORY_LOCK_KEY = 0x6465_6570_6D69_6772  # "deepmigr"

CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def parse_migration_name(filename: str) -> tuple[str, str]:
    match = FILE_PATTERN.match(filename)
    if match is None:
        raise MigrationError(f"{filename}: migration files are named NNNN_lower_snake_name.sql")
    return match.group(1), match.group(2)


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        version, name = parse_migration_name(path.name)
        migrations.append(Migration(version, name, path.read_text()))
    versions = [migration.version for migration in migrations]
    duplicates = sorted({version for version in versions if versions.count(version) > 1})
    if duplicates:
        raise MigrationError(f"more than one migration numbered {', '.join(duplicates)}")
    return migrations


def pending(migrations: Iterable[Migration], applied: Mapping[str, str]) -> list[Migration]:
    """Migrations not yet applied, given {version: checksum} of those that were; edited history is refused."""
    todo = []
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is None:
            todo.append(migration)
        elif recorded != migration.checksum:
            raise MigrationError(
                f"migration {migration.version}_{migration.name} changed after it was applied; "
                "add a new migration instead"
            )
    return todo


async def migrate(dsn: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations, each in its own transaction; returns the versions applied (empty: none)."""
    migrations = load_migrations(directory)
    conn = await asyncpg.connect(dsn)
    try:
        # A session lock, held across the per-migration transactions, so concurrent migrators take turns.
        await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
        try:
            await conn.execute(CREATE_LEDGER)
            rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
            applied: list[str] = []
            for migration in pending(migrations, {row["version"]: row["checksum"] for row in rows}):
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
                applied.append(migration.version)
            return applied
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
    finally:
        await conn.close()
