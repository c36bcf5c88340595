"""A sink's batch of Kafka records, and the plan that makes its insert repeatable.

Delivery is at-least-once: offsets are committed after the insert, so a crash in between re-reads the
batch. ClickHouse drops an insert whose deduplication token it has seen, but only if the re-read batch
gets the same token, and batch boundaries depend on timing. So before inserting, the sink commits the
batch's plan (its offset range per partition) as the metadata of the offsets it starts from; whoever
owns those partitions next finds the plan, re-reads exactly those ranges and inserts them with the same
token (dropped if the first insert landed), then commits past them.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

Row = tuple[Any, ...]

PLAN_PREFIX = "sink-plan:1:"
_RANGE = re.compile(r"^(\d+):(\d+)-(\d+)$")


@dataclass(frozen=True, order=True)
class OffsetRange:
    partition: int
    first: int
    last: int

    @property
    def next_offset(self) -> int:
        return self.last + 1


@dataclass(frozen=True)
class BatchPlan:
    ranges: tuple[OffsetRange, ...]

    def encode(self) -> str:
        return ",".join(f"{r.partition}:{r.first}-{r.last}" for r in self.ranges)

    def token(self, scope: str) -> str:
        """The insert's deduplication token: the same records from the same consumer group, the same token."""
        return f"{scope}/{self.encode()}"

    def metadata(self) -> str:
        return PLAN_PREFIX + self.encode()

    @classmethod
    def from_metadata(cls, metadata: str) -> BatchPlan | None:
        """The plan recorded with committed offsets; None when there is none (or it is not ours)."""
        if not metadata.startswith(PLAN_PREFIX):
            return None
        ranges = []
        for part in metadata.removeprefix(PLAN_PREFIX).split(","):
            match = _RANGE.match(part)
            if match is None:
                return None
            partition, first, last = (int(group) for group in match.groups())
            ranges.append(OffsetRange(partition, first, last))
        return cls(tuple(sorted(ranges))) if ranges else None

    def covers(self, partition: int) -> OffsetRange | None:
        return next((r for r in self.ranges if r.partition == partition), None)


class Batch:
    """Records taken since the last flush. Rows come out by partition, then offset: the same records give
    the same Arrow table whatever order the partitions were fetched in."""

    def __init__(self) -> None:
        self._rows: dict[int, list[Row]] = {}
        self._first: dict[int, int] = {}
        self._last: dict[int, int] = {}
        self.records = 0
        self.row_count = 0
        self.opened_at = 0.0

    def __bool__(self) -> bool:
        return self.records > 0

    def add(self, partition: int, first: int, last: int, rows: list[Row], records: int) -> None:
        """Take a partition's consecutive records first..last (`records` of them; offsets may have gaps)
        and their rows, fewer than the records when some went to the dead-letter topic."""
        if not self.records:
            self.opened_at = time.monotonic()
        self.records += records
        self._first.setdefault(partition, first)
        self._last[partition] = last
        self._rows.setdefault(partition, []).extend(rows)
        self.row_count += len(rows)

    def age(self) -> float:
        return time.monotonic() - self.opened_at if self.records else 0.0

    def plan(self) -> BatchPlan:
        return BatchPlan(
            tuple(OffsetRange(p, self._first[p], self._last[p]) for p in sorted(self._first)),
        )

    def rows(self) -> list[Row]:
        return [row for partition in sorted(self._rows) for row in self._rows[partition]]
