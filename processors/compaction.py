"""Compaction markers: what makes an erasure's superseded changelog values go on a partition nobody writes.

Kafka rolls a segment only when a record arrives after `segment.ms`, and its cleaner never cleans the active
segment: on a quiet changelog partition the values an erasure superseded (and its deletion markers, whose
keys may name the erased) would stay on disk until the next write. So the worker owning a partition the
erasure changed appends a marker to every changelog's partition `ERASED_WITHIN_MS` after the erasure's own
writes, and once more twice as long after it (`COMPACTION_MARKERS`): each rolls the segment before it, which
the cleaner then compacts (`max.compaction.lag.ms`); the first cleaning drops the superseded values, the
second the deletion markers.

The marker is a tombstone for `MARKER_KEY`, a key no table entry has (every entry's key starts with a
partition key: a guild id or `dm:<bot id>`): recovering or standing by, Faust deletes the key, which is not
there, and the export and a reader of the latest values see a deleted key. Tombstones of one key replace
each other, so the markers do not pile up.

The pending markers are a table (`changelog_rolls`, keyed by the partition), so a worker restarted between
the erasure and a marker, or the worker taking the partition over, still sends them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from models.processor_state import ChangelogRoll

MARKER_KEY = "~compaction-marker"
ROLLS_TABLE = "changelog_rolls"


def roll_key(partition: int) -> str:
    """The `changelog_rolls` key of a changelog partition (every table's: they are co-partitioned)."""
    return str(partition)


def rolled_partition(key: str) -> int:
    return int(key)


def after_erasure(pending: ChangelogRoll | None, written_at: datetime, within: timedelta) -> ChangelogRoll:
    """The partition's markers once an erasure's writes reached it at `written_at`: all of them again, the
    next one `within` later, or sooner if one was already due sooner (its roll takes these writes too)."""
    due_at = written_at + within
    if pending is not None:
        due_at = min(due_at, pending.due_at)
    return ChangelogRoll(due_at=due_at)


def is_due(pending: ChangelogRoll, now: datetime) -> bool:
    return now >= pending.due_at


def after_marker(pending: ChangelogRoll, sent_at: datetime, within: timedelta) -> ChangelogRoll | None:
    """The partition's markers once one reached it at `sent_at`: the next twice `within` later, or None when
    that was the last. The cleaning this marker causes (within the cleaner's back-off, shorter than the
    bound) keeps the deletion markers `delete.retention.ms` (the bound) more; only a cleaning after that
    removes them, and the next marker causes one by rolling the segment this marker opened."""
    left = pending.markers_left - 1
    return ChangelogRoll(due_at=sent_at + 2 * within, markers_left=left) if left else None
