"""Forward-only ClickHouse migrations: sinks/clickhouse/migrations/NNNN_name.sql, applied once, in order.

Every statement names its tables as `{database}.table`, so one set of files serves any database (the
platform's, and a fresh one per test module). Statements are idempotent (IF NOT EXISTS): a migration
interrupted half way is simply applied again. The files, their naming and the refusal of edited history
are those of the PostgreSQL migrations (infra/migrate.py).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client

from infra.migrate import Migration, load_migrations, pending

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DEFAULT_DATABASE = "deep"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Statements end with a semicolon at the end of a line; the files hold no string containing one.
_STATEMENT_END = re.compile(r";[ \t]*(?:\n|$)")

# Columns that hold a Discord user's id, for erasure and the access export.
USER_COLUMNS: dict[str, tuple[str, ...]] = {
    "events": ("author_id",),
    "decisions": ("author_id",),
    "moderation_audit": ("user_id", "moderator_id"),
}


# The per-record tables and the time each row is aged out by; the per-minute rollups (counts, sizes and
# uniq states: no ids) outlive them, which is what the long-range panels read.
ROW_TIMES: dict[str, str] = {
    "events": "received_at",
    "decisions": "decided_at",
    "inference_usage": "completed_at",
    "actions": "created_at",
    "moderation_audit": "at",
    "token_health": "at",
    "consumer_lag": "sampled_at",
}


def checked_database(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"database: {name!r} is not a plain identifier (letters, digits, underscores)")
    return name


def statements(migration: Migration, database: str) -> list[str]:
    sql = migration.sql.replace("{database}", f"`{checked_database(database)}`")
    return [statement.strip() for statement in _STATEMENT_END.split(sql) if _has_code(statement)]


def _has_code(statement: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in statement.splitlines())


def migrate(client: Client, database: str = DEFAULT_DATABASE, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Create the database if needed and apply pending migrations; returns the versions applied."""
    db = f"`{checked_database(database)}`"
    client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations "
        "(version String, name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )
    rows = client.query(f"SELECT version, checksum FROM {db}.schema_migrations FINAL").result_rows
    applied: list[str] = []
    for migration in pending(load_migrations(directory), {version: checksum for version, checksum in rows}):
        for statement in statements(migration, database):
            client.command(statement)
        client.insert(
            f"{db}.schema_migrations",
            [[migration.version, migration.name, migration.checksum]],
            column_names=["version", "name", "checksum"],
        )
        applied.append(migration.version)
    return applied


def row_ttl(column: str, days: int) -> str:
    """The TTL clause as ClickHouse prints it back in `engine_full`."""
    return f"TTL toDateTime({column}) + toIntervalDay({days})"


def table_engines(client: Client, database: str) -> dict[str, str]:
    """Each table's engine with its clauses (TTL included), by table name."""
    rows = client.query(
        "SELECT name, engine_full FROM system.tables WHERE database = {database:String}",
        parameters={"database": database},
    ).result_rows
    return {str(name): str(engine) for name, engine in rows}


def apply_retention(client: Client, days: int, database: str = DEFAULT_DATABASE) -> list[str]:
    """Give every per-record table a TTL of `days` (the analytics retention); returns the tables changed.
    A table already carrying it is left alone: modifying a TTL rewrites the table's parts."""
    if days < 1:
        raise ValueError(f"days: {days} is not a positive number of days")
    db = f"`{checked_database(database)}`"
    engines = table_engines(client, database)
    changed = []
    for table, column in ROW_TIMES.items():
        if row_ttl(column, days) not in engines.get(table, ""):
            client.command(f"ALTER TABLE {db}.{table} MODIFY TTL toDateTime({column}) + INTERVAL {days} DAY")
            changed.append(table)
    return changed


def erase_user(client: Client, user_id: str, database: str = DEFAULT_DATABASE) -> int:
    """Delete every row naming a Discord user (the erasure request); rollups hold no user ids. Returns how
    many rows named them."""
    db = f"`{checked_database(database)}`"
    erased = 0
    for table, condition in _naming_user(user_id).items():
        parameters = {"user": user_id}
        counted = client.query(f"SELECT count() FROM {db}.{table} WHERE {condition}", parameters=parameters)
        erased += int(counted.result_rows[0][0])
        client.command(f"DELETE FROM {db}.{table} WHERE {condition}", parameters=parameters)
    return erased


def user_rows(
    client: Client, user_id: str, database: str = DEFAULT_DATABASE
) -> dict[str, list[dict[str, Any]]]:
    """Every row naming a Discord user, by table, as JSON values (the access export)."""
    db = f"`{checked_database(database)}`"
    found: dict[str, list[dict[str, Any]]] = {}
    for table, condition in _naming_user(user_id).items():
        result = client.query(f"SELECT * FROM {db}.{table} WHERE {condition}", parameters={"user": user_id})
        rows = [
            {name: _json_value(value) for name, value in zip(result.column_names, row, strict=True)}
            for row in result.result_rows
        ]
        if rows:
            found[table] = rows
    return found


def _naming_user(user_id: str) -> dict[str, str]:
    """Per table, the condition on {user:String} that selects the rows naming the user."""
    if not user_id.isdigit():
        raise ValueError(f"user_id: {user_id!r} is not a Discord id")
    return {
        table: " OR ".join(f"{column} = {{user:String}}" for column in columns)
        for table, columns in USER_COLUMNS.items()
    }


def _json_value(value: Any) -> Any:
    """Times as ISO text, other values as ClickHouse gives them (numbers, text)."""
    return value.isoformat() if isinstance(value, datetime | date) else value
