"""The consumer skeleton's bookkeeping, in process: which offsets may be committed, and its options."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from streams.consumer import ConsumerOptions, OffsetTracker

LANE = TopicPartition("lane", 0)
OTHER = TopicPartition("lane", 1)


def records(*offsets: int) -> list[ConsumerRecord[bytes, bytes]]:
    return [
        ConsumerRecord(LANE.topic, LANE.partition, offset, 0, 0, None, b"", None, -1, 0, [])
        for offset in offsets
    ]


def test_out_of_order_completion_commits_only_the_done_prefix() -> None:
    tracker = OffsetTracker()
    tracker.started_each(LANE, records(5, 6, 7, 8))
    assert tracker.committable() == {LANE: 5}
    tracker.done(LANE, 7)
    tracker.done(LANE, 6)
    assert tracker.committable() == {LANE: 5}
    tracker.done(LANE, 5)
    assert tracker.committable() == {LANE: 8}
    tracker.committed({LANE: 8})
    assert tracker.committable() == {}  # nothing moved since the commit
    tracker.done(LANE, 8)
    assert tracker.committable() == {LANE: 9}


def test_a_run_of_records_is_held_at_its_first_offset_until_done() -> None:
    tracker = OffsetTracker()
    tracker.started(LANE, 10, last=19)
    tracker.started(LANE, 20, last=24)
    assert tracker.position(LANE) == 10 and tracker.held("lane") == 2
    tracker.done(LANE, 20)  # the later run is done first: still held by the earlier one
    assert tracker.position(LANE) == 10
    tracker.done(LANE, 10)
    assert tracker.position(LANE) == 25 and tracker.held("lane") == 0


def test_done_below_settles_every_hold_under_it_and_moves_past_records_never_read() -> None:
    tracker = OffsetTracker()
    tracker.started(LANE, 0, last=9)
    tracker.started(LANE, 10, last=19)
    tracker.done_below(LANE, 10)
    assert tracker.position(LANE) == 10 and tracker.held("lane") == 1
    tracker.done_below(OTHER, 42)  # settled elsewhere (a replay): nothing was read here
    assert tracker.position(OTHER) == 42


def test_forgotten_partitions_release_their_holds_and_late_completions_are_ignored() -> None:
    tracker = OffsetTracker()
    tracker.started_each(LANE, records(0, 1, 2))
    tracker.started(OTHER, 3)
    assert tracker.held("lane") == 4
    tracker.forget([LANE])
    assert tracker.held("lane") == 1 and tracker.position(LANE) is None
    assert not tracker.done(LANE, 1)
    assert tracker.committable() == {OTHER: 3}


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_in_flight_per_topic", 0), ("resume_fraction", 1.0), ("commit_interval_s", 0.0)],
)
def test_options_name_the_field_they_reject(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        ConsumerOptions(group_id="g", client_id="c", consumer_name="n", **{field: value})
