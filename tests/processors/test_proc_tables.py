"""The table plumbing: changelog values round-trip through the codec, keys land on the partitions of the
guild topics."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner

from models.processor_state import MusicQueue
from models.state import ChannelContext, ContextMessage
from processors.tables import ModelCodec, partition_of
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
