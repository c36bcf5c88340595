"""The retention settings: their defaults, their validation, and the stores that take them from the
environment (the topic catalog; the ClickHouse TTL and the memory sweep have tests of their own, in
tests/analytics and tests/memory)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from memory.writer import retention_cutoff
from settings import REPO_ROOT, Retention, load_settings
from streams.catalog import DAY_MS, DEAD_LETTERS, DISCORD_EVENTS, HOUR_MS


def test_the_defaults_are_the_documented_ones() -> None:
    assert load_settings().retention == Retention(
        events_days=7, dead_letters_days=14, analytics_days=90, memories_days=365, erased_within_ms=HOUR_MS
    )


def test_each_setting_is_read_from_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, days in (
        ("DEEP_RETENTION_EVENTS_DAYS", 3),
        ("DEEP_RETENTION_DEAD_LETTERS_DAYS", 4),
        ("DEEP_RETENTION_ANALYTICS_DAYS", 5),
        ("DEEP_RETENTION_MEMORIES_DAYS", 0),
        ("DEEP_ERASURE_COMPACTION_MS", 5000),
    ):
        monkeypatch.setenv(variable, str(days))
    assert load_settings().retention == Retention(3, 4, 5, 0, 5000)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEEP_RETENTION_EVENTS_DAYS", "0"),
        ("DEEP_RETENTION_DEAD_LETTERS_DAYS", "-1"),
        ("DEEP_RETENTION_ANALYTICS_DAYS", "0"),
        ("DEEP_RETENTION_ANALYTICS_DAYS", "36500"),  # past ClickHouse's DateTime: every row would expire
        ("DEEP_RETENTION_MEMORIES_DAYS", "-1"),
        ("DEEP_RETENTION_EVENTS_DAYS", "a week"),
        ("DEEP_ERASURE_COMPACTION_MS", "999"),  # the broker would do nothing but roll and clean
    ],
)
def test_a_retention_that_keeps_nothing_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=variable):
        load_settings()


def test_the_catalog_carries_the_default_retention() -> None:
    assert DISCORD_EVENTS.broker_config()["retention.ms"] == str(7 * DAY_MS)
    assert {spec.broker_config()["retention.ms"] for spec in DEAD_LETTERS.values()} == {str(14 * DAY_MS)}


def test_the_catalog_takes_the_retention_from_the_environment() -> None:
    script = (
        "import json; from streams.catalog import AGENT_DEPLOYMENTS, DEAD_LETTERS, DISCORD_EVENTS; "
        "print(json.dumps([DISCORD_EVENTS.broker_config(), DEAD_LETTERS['discord.events'].broker_config(), "
        "AGENT_DEPLOYMENTS.broker_config()]))"
    )
    env = {
        **os.environ,
        "DEEP_RETENTION_EVENTS_DAYS": "2",
        "DEEP_RETENTION_DEAD_LETTERS_DAYS": "3",
        "DEEP_ERASURE_COMPACTION_MS": "4000",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True
    )
    events, dead_letters, compacted = json.loads(done.stdout)
    assert events["retention.ms"] == str(2 * DAY_MS)
    assert dead_letters["retention.ms"] == str(3 * DAY_MS)
    for bound in ("segment.ms", "max.compaction.lag.ms", "delete.retention.ms"):
        assert compacted[bound] == "4000"


def test_memories_are_kept_when_their_retention_is_zero() -> None:
    now = datetime(2026, 12, 6, tzinfo=UTC)
    assert retention_cutoff(now, 365) == now - timedelta(days=365)
    assert retention_cutoff(now, 0) is None
