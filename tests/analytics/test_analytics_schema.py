from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from clickhouse_connect.driver.client import Client

from infra.migrate import MigrationError
from models.decisions import DecisionReason
from sinks.clickhouse.schema import (
    MIGRATIONS_DIR,
    ROW_TIMES,
    apply_retention,
    erase_user,
    migrate,
    row_ttl,
    table_engines,
    user_rows,
)
from sinks.consumer import TableWriter
from sinks.tables import DECISIONS, EVENTS, MODERATION
from tests.analytics.factories import T0, audit, decision, event

pytestmark = pytest.mark.stack

TIMELINE = set(ROW_TIMES)
ROLLUPS = {"events_per_minute", "decisions_per_minute", "actions_per_minute", "inference_per_minute"}


def scalar(client: Client, sql: str) -> object:
    return client.query(sql).result_rows[0][0]


def test_migrations_create_the_schema_once(clickhouse: Client, database: str) -> None:
    tables = {row[0] for row in clickhouse.query(f"SHOW TABLES FROM `{database}`").result_rows}
    assert tables >= TIMELINE | ROLLUPS
    assert {f"{name}_mv" for name in ROLLUPS} <= tables
    assert migrate(clickhouse, database) == []
    ledger = clickhouse.query(f"SELECT version FROM `{database}`.schema_migrations FINAL ORDER BY version")
    assert [row[0] for row in ledger.result_rows] == ["0001", "0002", "0003"]


def test_an_edited_migration_is_refused(clickhouse: Client, tmp_path: Path) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    name = f"analytics_{uuid4().hex[:10]}"
    try:
        assert migrate(clickhouse, name, directory) == ["0001", "0002", "0003"]
        first = directory / "0001_timeline.sql"
        first.write_text(first.read_text() + "\n-- edited\n")
        with pytest.raises(MigrationError, match="0001_timeline changed"):
            migrate(clickhouse, name, directory)
    finally:
        clickhouse.command(f"DROP DATABASE IF EXISTS `{name}` SYNC")


def test_a_database_name_must_be_an_identifier(clickhouse: Client) -> None:
    with pytest.raises(ValueError, match="database"):
        migrate(clickhouse, "deep; DROP TABLE x")


def test_a_replayed_insert_counts_once_in_the_table_and_its_rollup(clickhouse: Client, database: str) -> None:
    # Two days, so the insert is split into two blocks (one per partition) and both must be recognised.
    events = [event(n, T0 + timedelta(days=n % 2, seconds=n)) for n in range(10)]
    rows = [EVENTS.row(e) for e in events]
    writer = TableWriter(clickhouse, database, EVENTS)
    for _ in range(3):
        writer.insert_now(rows, token="sink/topic/0:0-9")
    assert scalar(clickhouse, f"SELECT count() FROM `{database}`.events") == 10
    assert scalar(clickhouse, f"SELECT sum(events) FROM `{database}`.events_per_minute") == 10
    # Another token is another batch: the same rows count again, so the tokens are what deduplicates.
    writer.insert_now(rows, token="sink/topic/0:10-19")
    assert scalar(clickhouse, f"SELECT count() FROM `{database}`.events") == 20
    assert scalar(clickhouse, f"SELECT sum(events) FROM `{database}`.events_per_minute") == 20


def test_the_export_shows_and_the_erasure_removes_every_row_naming_the_user(clickhouse: Client) -> None:
    name = f"analytics_{uuid4().hex[:10]}"
    migrate(clickhouse, name)
    try:
        erased, kept = "4242", "4343"
        events = [event(n, T0, author_id=erased if n % 2 else kept) for n in range(6)]
        TableWriter(clickhouse, name, EVENTS).insert_now([EVENTS.row(e) for e in events], token=None)
        decisions = [
            decision(e, respond=True, reason=DecisionReason.mentioned, author_id=e.data["author"]["id"])
            for e in events
        ]
        TableWriter(clickhouse, name, DECISIONS).insert_now([DECISIONS.row(d) for d in decisions], token=None)
        audits = [
            audit(1, T0, rule="spam", source="automod", actions=["delete"], guild_id="300", user_id=erased),
            audit(2, T0, rule="spam", source="automod", actions=["delete"], guild_id="300", user_id=kept),
        ]
        TableWriter(clickhouse, name, MODERATION).insert_now([MODERATION.row(a) for a in audits], token=None)

        exported = user_rows(clickhouse, erased, name)
        assert {table: len(rows) for table, rows in exported.items()} == {
            "events": 3,
            "decisions": 3,
            "moderation_audit": 1,
        }
        assert {row["author_id"] for row in exported["events"]} == {erased}
        assert isinstance(exported["events"][0]["received_at"], str)  # JSON: times as ISO text

        erase_user(clickhouse, erased, name)
        assert user_rows(clickhouse, erased, name) == {}

        for table, column in (
            ("events", "author_id"),
            ("decisions", "author_id"),
            ("moderation_audit", "user_id"),
        ):
            authors = clickhouse.query(f"SELECT DISTINCT {column} FROM `{name}`.{table}").result_rows
            assert authors == [(kept,)], table
    finally:
        clickhouse.command(f"DROP DATABASE IF EXISTS `{name}` SYNC")


def test_the_retention_ages_out_every_per_record_table_and_only_once(clickhouse: Client) -> None:
    name = f"analytics_{uuid4().hex[:10]}"
    migrate(clickhouse, name)
    try:
        now = datetime.now(UTC)
        fresh, aged = event(1, now - timedelta(days=89)), event(2, now - timedelta(days=91))
        TableWriter(clickhouse, name, EVENTS).insert_now([EVENTS.row(e) for e in (fresh, aged)], token=None)
        assert apply_retention(clickhouse, 90, name) == list(ROW_TIMES)
        assert apply_retention(clickhouse, 90, name) == []  # already set: the tables are not rewritten
        engines = table_engines(clickhouse, name)
        for table, column in ROW_TIMES.items():
            assert row_ttl(column, 90) in engines[table], table
        clickhouse.command(f"OPTIMIZE TABLE `{name}`.events FINAL")
        kept = clickhouse.query(f"SELECT event_id FROM `{name}`.events").result_rows
        assert kept == [(fresh.event_id,)]
        # The per-minute rollups (no ids, no content) keep the long-range panels' history.
        assert scalar(clickhouse, f"SELECT sum(events) FROM `{name}`.events_per_minute") == 2
        assert apply_retention(clickhouse, 30, name) == list(ROW_TIMES)
    finally:
        clickhouse.command(f"DROP DATABASE IF EXISTS `{name}` SYNC")


def test_erasure_takes_only_a_discord_id(clickhouse: Client, database: str) -> None:
    with pytest.raises(ValueError, match="user_id"):
        erase_user(clickhouse, "1 OR 1=1", database)
