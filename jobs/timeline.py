"""History on Kafka by time: the offsets of a time window on each partition, and the records of several
topics merged into one timeline."""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from streams.history import KafkaTools, records_between

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(at: datetime) -> int:
    return (at - EPOCH) // timedelta(milliseconds=1)


@dataclass(frozen=True)
class TimeWindow:
    """Records stamped in [start, end). Warm-up records, stamped in the `warmup` before start, are
    processed to build state but their outputs are neither kept nor compared."""

    start: datetime | None = None  # None: the beginning of the topics
    end: datetime | None = None  # None: the end of the topics when the job starts
    warmup: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        for name, at in (("start", self.start), ("end", self.end)):
            if at is not None and at.tzinfo is None:
                raise ValueError(f"{name}: a time window needs time zone aware datetimes")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError(f"end: {self.end.isoformat()} is not after start {self.start.isoformat()}")
        if self.warmup < timedelta(0):
            raise ValueError("warmup: must not be negative")

    @property
    def read_from(self) -> datetime | None:
        return self.start - self.warmup if self.start is not None else None

    def in_window(self, timestamp_ms: int) -> bool:
        """Whether a record read for the window is past the warm-up."""
        return self.start is None or timestamp_ms >= to_ms(self.start)


@dataclass(frozen=True)
class Span:
    """One partition's offsets for a window: from `start` up to, not including, `end`."""

    tp: TopicPartition
    start: int
    end: int

    @property
    def size(self) -> int:
        return max(self.end - self.start, 0)


async def first_offsets_at(
    reader: AIOKafkaConsumer, tps: Sequence[TopicPartition], at: datetime
) -> dict[TopicPartition, int]:
    """The first offset stamped at or after `at` on each partition; the end offset where none is."""
    ends = await reader.end_offsets(list(tps))
    found = await reader.offsets_for_times({tp: to_ms(at) for tp in tps})
    return {tp: hit.offset if (hit := found.get(tp)) is not None else ends[tp] for tp in tps}


async def spans(kafka: KafkaTools, topic: str, start: datetime | None, end: datetime | None) -> list[Span]:
    reader = kafka.reader
    tps = await kafka.partitions(topic)
    firsts = (
        await reader.beginning_offsets(tps) if start is None else await first_offsets_at(reader, tps, start)
    )
    lasts = await reader.end_offsets(tps) if end is None else await first_offsets_at(reader, tps, end)
    return [Span(tp, firsts[tp], lasts[tp]) for tp in tps]


async def merged(
    reader: AIOKafkaConsumer, sources: Sequence[Sequence[Span]]
) -> AsyncIterator[tuple[int, ConsumerRecord[bytes, bytes]]]:
    """(source index, record) of every span, in timestamp order. Each partition keeps its own order (a
    merge only compares the heads), and on equal timestamps the earlier source goes first."""
    reader.assign([span.tp for spans_ in sources for span in spans_])
    streams = [
        (source, records_between(reader, span.tp, span.start, span.end))
        for source, spans_ in enumerate(sources)
        for span in spans_
        if span.size
    ]
    heads: list[tuple[int, int, int, ConsumerRecord[bytes, bytes]]] = []
    for index, (source, stream) in enumerate(streams):
        if (first := await anext(stream, None)) is not None:
            heads.append((first.timestamp, source, index, first))
    heapq.heapify(heads)
    while heads:
        _, source, index, record = heapq.heappop(heads)
        yield source, record
        if (following := await anext(streams[index][1], None)) is not None:
            heapq.heappush(heads, (following.timestamp, source, index, following))
