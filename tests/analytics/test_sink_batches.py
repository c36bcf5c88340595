from __future__ import annotations

from sinks.batch import PLAN_PREFIX, Batch, BatchPlan, OffsetRange


def test_a_plan_survives_the_commit_metadata() -> None:
    plan = BatchPlan((OffsetRange(0, 10, 19), OffsetRange(3, 7, 7)))
    assert plan.metadata().startswith(PLAN_PREFIX)
    assert BatchPlan.from_metadata(plan.metadata()) == plan
    assert plan.token("group/topic") == "group/topic/0:10-19,3:7-7"


def test_metadata_that_is_not_a_plan_reads_as_none() -> None:
    for metadata in ("", "written by someone else", PLAN_PREFIX, PLAN_PREFIX + "0:1", PLAN_PREFIX + "a:1-2"):
        assert BatchPlan.from_metadata(metadata) is None


def fetch(batch: Batch, partition: int, offsets: range) -> None:
    batch.add(partition, offsets[0], offsets[-1], [(partition, o) for o in offsets], len(offsets))


def test_the_same_records_make_the_same_rows_and_plan_whatever_the_fetch_order() -> None:
    first, second = Batch(), Batch()
    for partition in (2, 0, 1):
        fetch(first, partition, range(partition * 10, partition * 10 + 3))
    for partition in (0, 1, 2):
        fetch(second, partition, range(partition * 10, partition * 10 + 2))
    for partition in (1, 2, 0):
        fetch(second, partition, range(partition * 10 + 2, partition * 10 + 3))
    assert first.rows() == second.rows() == [(p, o) for p in (0, 1, 2) for o in range(p * 10, p * 10 + 3)]
    assert first.plan() == second.plan()
    assert first.plan().ranges == (OffsetRange(0, 0, 2), OffsetRange(1, 10, 12), OffsetRange(2, 20, 22))
    assert first.records == first.row_count == 9


def test_a_dead_lettered_record_is_covered_by_the_plan_but_has_no_row() -> None:
    batch = Batch()
    batch.add(0, 5, 6, [("a",)], records=2)
    assert batch.records == 2 and batch.row_count == 1
    assert batch.rows() == [("a",)]
    assert batch.plan().ranges == (OffsetRange(0, 5, 6),)
    assert not Batch() and batch
