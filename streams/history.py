"""Reading topics outside any consumer group: an admin client with an unassigned reader, offset-bounded
reads of one partition, the latest values of compacted topics, and the progress callbacks long reads report
to. Jobs, ops, the processors' start and the playground use them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CoordinatorLoadInProgressError, GroupCoordinatorNotAvailableError

from streams.codec import decode_key

# A progress reporter: called with (what, total units) when a long step starts, it returns the function to
# call with each batch of units done. The CLI draws rich progress bars; library callers pass no_progress.
Advance = Callable[[int], None]
Track = Callable[[str, int], Advance]

T = TypeVar("T")

COORDINATOR_ATTEMPTS = 20
COORDINATOR_RETRY_S = 0.5


def no_progress(what: str, total: int) -> Advance:
    return lambda done: None


class KafkaTools:
    """An admin client and a consumer outside any group (for assigned reads and offset look-ups), started
    and stopped together."""

    def __init__(self, bootstrap: str) -> None:
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="deep-ops")
        self.reader = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
        )

    async def __aenter__(self) -> KafkaTools:
        await self.admin.start()
        try:
            await self.reader.start()
        except BaseException:
            await self.admin.close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self.reader.stop()
        finally:
            await self.admin.close()

    async def describe(self, topic: str) -> dict[str, Any]:
        """The broker's metadata of a topic: its partitions with leader, replicas and in-sync replicas."""
        (described,) = await self.admin.describe_topics([topic])
        if described["error_code"] or not described["partitions"]:
            raise LookupError(f"topic {topic!r} does not exist on the broker")
        return cast(dict[str, Any], described)

    async def partitions(self, topic: str) -> list[TopicPartition]:
        """The topic's partitions as the broker has them now."""
        numbers = sorted(p["partition"] for p in (await self.describe(topic))["partitions"])
        return [TopicPartition(topic, number) for number in numbers]

    async def coordinated(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run a consumer-group call; the broker refuses them while it loads or creates the group
        coordinator (a fresh broker, the first group), so those answers are retried for a while."""
        for _ in range(COORDINATOR_ATTEMPTS - 1):
            try:
                return await call()
            except (GroupCoordinatorNotAvailableError, CoordinatorLoadInProgressError):
                await asyncio.sleep(COORDINATOR_RETRY_S)
        return await call()


async def records_between(
    reader: AIOKafkaConsumer, tp: TopicPartition, start: int, end: int
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """The records of an assigned partition from offset `start` up to, not including, `end`, in order.
    Offsets can have gaps (compaction, transaction markers): the reader's position decides when it is done."""
    if start >= end:
        return
    reader.seek(tp, start)
    while await reader.position(tp) < end:
        fetched = await reader.getmany(tp, timeout_ms=1000)
        for record in fetched.get(tp, []):
            if record.offset >= end:
                return
            yield record


async def every_record(bootstrap: str, topic: str) -> AsyncIterator[bytes | None]:
    """The value of every record the topic holds now, partition by partition."""
    async with KafkaTools(bootstrap) as kafka:
        tps = await kafka.partitions(topic)
        kafka.reader.assign(tps)
        starts, ends = await kafka.reader.beginning_offsets(tps), await kafka.reader.end_offsets(tps)
        for tp in tps:
            async for record in records_between(kafka.reader, tp, starts[tp], ends[tp]):
                yield record.value


# Topics ------------------------------------------------------------------------------------------------


async def read_compacted(bootstrap: str, topic: str, partitions: set[int]) -> dict[str, bytes | None]:
    """The latest value of every key on the given partitions of a compacted topic (None: a tombstone)."""
    return (await read_compacted_topics(bootstrap, {topic: partitions}))[topic]


async def read_compacted_topics(
    bootstrap: str, partitions: Mapping[str, set[int]]
) -> dict[str, dict[str, bytes | None]]:
    """By topic, the latest value of every key on the given partitions of compacted topics, read by one
    consumer: the broker serves all their partitions in each fetch."""
    latest: dict[str, dict[str, bytes | None]] = {topic: {} for topic in partitions}
    tps = [TopicPartition(topic, p) for topic, numbers in partitions.items() for p in sorted(numbers)]
    if not tps:
        return latest
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        ends = await reader.end_offsets(tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            batch = await reader.getmany(*pending, timeout_ms=1000)
            for tp, records in batch.items():
                values = latest[tp.topic]
                for record in records:
                    values[decode_key(record.key) or ""] = record.value
            # Compaction leaves gaps in the offsets: done when the position passed the end.
            pending = {tp for tp in pending if await reader.position(tp) < ends[tp]}
    finally:
        await reader.stop()
    return latest
