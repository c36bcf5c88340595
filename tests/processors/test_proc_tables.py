"""The table plumbing: changelog values round-trip through the codec, keys land on the partitions of the
guild topics, a batch's writes reach the changelog once per key."""

from __future__ import annotations

from typing import Any, cast

import pytest
from aiokafka.partitioner import DefaultPartitioner

from models.processor_state import MusicQueue
from models.state import ChannelContext, ContextMessage
from processors.table_catalog import partition_of
from processors.tables import ModelCodec, TableView, coalesced_writes
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
    """What TableView uses of a Faust table: its store, whether it is partitioned by key, its changelog."""

    def __init__(self, name: str, *, use_partitioner: bool) -> None:
        self.data: dict[str, Any] = {}
        self.use_partitioner = use_partitioner
        self.changelog_topic_name = f"{name}-changelog"


class TextCodec:
    def dumps(self, value: str) -> bytes:
        return value.encode()


class RecordingProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, int | None]] = []

    async def send(self, topic: str, key: bytes, value: bytes | None, partition: int | None, *_: Any) -> None:
        self.sent.append((topic, key, value, partition))


async def test_a_batch_sends_each_written_key_once_with_its_last_value() -> None:
    by_event = RecordingTable("moods", use_partitioner=False)
    by_key = RecordingTable("routines", use_partitioner=True)
    moods, routines = (TableView(cast(Any, table), cast(Any, TextCodec())) for table in (by_event, by_key))
    producer = RecordingProducer()
    async with coalesced_writes(cast(Any, producer)) as batch:
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
        assert producer.sent == []
    # One record per key: its last value, or a tombstone; on the partition of the event that wrote it
    # last, unless the table is partitioned by key (the producer's partitioner picks it then).
    assert producer.sent == [
        ("moods-changelog", b"g/d", b"cheerful", 4),
        ("moods-changelog", b"g/e", None, 4),
        ("routines-changelog", b"g", b"second", None),
        ("moods-changelog", b"h/d", b"glad", 4),
    ]


async def test_a_table_write_outside_a_batch_is_refused_and_changes_nothing() -> None:
    table = RecordingTable("moods", use_partitioner=False)
    moods = TableView(cast(Any, table), cast(Any, TextCodec()))
    with pytest.raises(RuntimeError, match="coalesced_writes"):
        moods["g/d"] = "calm"
    producer = RecordingProducer()
    async with coalesced_writes(cast(Any, producer)):
        moods["g/d"] = "calm"
    with pytest.raises(RuntimeError, match="coalesced_writes"):
        del moods["g/d"]
    assert table.data == {"g/d": "calm"}
    assert producer.sent == [("moods-changelog", b"g/d", b"calm", None)]
