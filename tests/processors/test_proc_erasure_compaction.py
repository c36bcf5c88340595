"""The compaction markers' decisions (processors/compaction.py): when an erasure's changelog partition gets
its markers, and how a later erasure or a marker sent changes that."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from models.processor_state import COMPACTION_MARKERS, ChangelogRoll
from models.table_keys import SEPARATOR
from processors.compaction import (
    MARKER_KEY,
    after_erasure,
    after_marker,
    is_due,
    roll_key,
    rolled_partition,
)

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
WITHIN = timedelta(seconds=5)


def test_an_erasure_makes_every_marker_due_after_the_bound() -> None:
    roll = after_erasure(None, T0, WITHIN)
    assert roll == ChangelogRoll(due_at=T0 + WITHIN, markers_left=COMPACTION_MARKERS)
    assert not is_due(roll, T0 + WITHIN - timedelta(milliseconds=1))
    assert is_due(roll, T0 + WITHIN)


def test_a_later_erasure_keeps_the_sooner_marker_and_restores_the_count() -> None:
    # The earlier erasure's bound holds: the sooner marker rolls the later erasure's writes too.
    one_left = ChangelogRoll(due_at=T0 + WITHIN, markers_left=1)
    again = after_erasure(one_left, T0 + timedelta(seconds=2), WITHIN)
    assert again == ChangelogRoll(due_at=T0 + WITHIN, markers_left=COMPACTION_MARKERS)
    # A pending marker due later than the new bound comes sooner.
    late = ChangelogRoll(due_at=T0 + 3 * WITHIN)
    assert after_erasure(late, T0, WITHIN).due_at == T0 + WITHIN


def test_the_next_marker_waits_for_the_deletion_markers_retention_and_the_last_ends_it() -> None:
    # The first marker's cleaning keeps the deletion markers the bound more: the next cleaning must be later.
    roll = after_erasure(None, T0, WITHIN)
    sent_at = T0 + WITHIN + timedelta(seconds=1)
    following = after_marker(roll, sent_at, WITHIN)
    assert following == ChangelogRoll(due_at=sent_at + 2 * WITHIN, markers_left=COMPACTION_MARKERS - 1)
    assert after_marker(following, sent_at + 2 * WITHIN, WITHIN) is None


def test_the_marker_key_is_no_table_entry_and_the_roll_key_reads_back() -> None:
    # Every entry's key starts with a partition key (digits or dm:<bot id>) and has parts joined by "/".
    assert SEPARATOR not in MARKER_KEY and not MARKER_KEY[0].isdigit() and not MARKER_KEY.startswith("dm:")
    assert [rolled_partition(roll_key(p)) for p in (0, 7, 11)] == [0, 7, 11]


def test_a_roll_with_no_marker_left_is_rejected() -> None:
    with pytest.raises(ValidationError, match="markers_left"):
        ChangelogRoll(due_at=T0, markers_left=0)
