"""The table plumbing: changelog values round-trip through the codec, keys land on the partitions of the
guild topics, a batch's writes reach the changelog once per key."""

from __future__ import annotations

from typing import Any, cast

from aiokafka.partitioner import DefaultPartitioner

from models.processor_state import MusicQueue
from models.state import ChannelContext, ContextMessage
from processors.tables import ModelCodec, TableView, coalesced_writes, partition_of
from tests.processors.factories import T0, snowflake


def test_changelog_values_round_trip() -> None:
    context = ChannelContext(
        channel_id=snowflake(),
        messages=[
            ContextMessage(
                message_id=snowflake(), author_id=snowflake(), author_name="Kai", content="hi", at=T0
            )
        ],
    )
    codec = ModelCodec(ChannelContext)
    assert codec.loads(codec.dumps(context)) == context
    queue = MusicQueue(now_playing="lofi", queue=["jazz"], applied=["evt-1"])
    assert ModelCodec(MusicQueue).loads(ModelCodec(MusicQueue).dumps(queue)) == queue


def test_partition_of_matches_the_kafka_clients() -> None:
    partitioner = DefaultPartitioner()
    partitions = list(range(12))
    for key in (snowflake(), "dm:1200000000000000001", "0"):
        assert partition_of(key) == partitioner(key.encode(), partitions, partitions)


class RecordingTable:
    """What TableView uses of a Faust table: its store, whether it is partitioned by key, the changelog."""

    def __init__(self, *, use_partitioner: bool) -> None:
        self.data: dict[str, Any] = {}
        self.use_partitioner = use_partitioner
        self.changelog: list[tuple[int | None, str, Any]] = []

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.changelog.append((3, key, value))

    def send_changelog(self, partition: int | None, key: str, value: Any, **_: Any) -> None:
        self.changelog.append((partition, key, value))


def test_a_batch_sends_each_written_key_once_with_its_last_value() -> None:
    by_event, by_key = RecordingTable(use_partitioner=False), RecordingTable(use_partitioner=True)
    moods, routines = TableView(cast(Any, by_event)), TableView(cast(Any, by_key))
    moods["g/d"] = "before"
    assert by_event.changelog == [(3, "g/d", "before")]
    by_event.changelog.clear()
    with coalesced_writes() as batch:
        batch.partition = 7
        moods["g/d"] = "calm"
        moods["g/e"] = "gone"
        routines["g"] = "first"
        batch.partition = 4
        moods["h/d"] = "glad"
        moods["g/d"] = "cheerful"
        del moods["g/e"]
        routines["g"] = "second"
        # Reads within the batch see its writes; nothing reached a changelog yet.
        assert (moods["g/d"], "g/e" in moods, routines["g"]) == ("cheerful", False, "second")
        assert by_event.changelog == by_key.changelog == []
    # One record per key: its last value, or a tombstone; on the partition of the event that wrote it
    # last, unless the table is partitioned by key.
    assert by_event.changelog == [(4, "g/d", "cheerful"), (4, "g/e", None), (4, "h/d", "glad")]
    assert by_key.changelog == [(None, "g", "second")]
    moods["g/d"] = "after"
    assert by_event.changelog[-1] == (3, "g/d", "after")
