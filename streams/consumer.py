"""The one at-least-once consumer: every service that consumes a topic in a group runs on it.

The loop fetches a batch, holds the fetched offsets in an OffsetTracker, and hands the batch to the
service's `apply`. The service reports each piece of work done (in any order, from any task); the
consumer commits, per partition, only the offset below which everything is done. Before a rebalance
takes partitions away, the service finishes or abandons their work and what is done is committed; what
was abandoned is redelivered to the next owner, so a service's effects must be idempotent.

Backpressure: when a topic has `max_in_flight_per_topic` offsets held, its partitions stop being fetched
(the consumer stays in the group) until the service has finished enough of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from aiokafka.errors import IllegalStateError, KafkaError
from aiokafka.structs import OffsetAndMetadata

from settings import IMMEDIATE_FETCH, FetchBatching
from streams.admin import leave_group
from streams.catalog import TopicSpec, dead_letter_topic
from streams.dead_letters import dead_letter

log = logging.getLogger(__name__)

Records = list[ConsumerRecord[bytes, bytes]]


class _Partition:
    __slots__ = ("committed", "next", "pending")

    def __init__(self) -> None:
        self.pending: set[int] = set()
        self.next = 0
        self.committed = -1


class OffsetTracker:
    """Which offsets of each partition are still held by unfinished work, and how far each partition
    may be committed: up to the oldest held offset, or past everything read when nothing is held."""

    def __init__(self) -> None:
        self._partitions: dict[TopicPartition, _Partition] = {}
        self._held_per_topic: dict[str, int] = {}

    def _partition(self, tp: TopicPartition) -> _Partition:
        partition = self._partitions.get(tp)
        if partition is None:
            partition = self._partitions[tp] = _Partition()
        return partition

    def started(self, tp: TopicPartition, offset: int, last: int | None = None) -> None:
        """Work on `offset` (through `last`, for work that covers a run of records) started; the partition
        is committed no further than `offset` until done(tp, offset)."""
        partition = self._partition(tp)
        if offset not in partition.pending:
            partition.pending.add(offset)
            self._held_per_topic[tp.topic] = self._held_per_topic.get(tp.topic, 0) + 1
        partition.next = max(partition.next, (offset if last is None else last) + 1)

    def started_each(self, tp: TopicPartition, records: Records) -> None:
        """One piece of work per record (records of one partition, in offset order)."""
        partition = self._partition(tp)
        before = len(partition.pending)
        partition.pending.update([record.offset for record in records])
        added = len(partition.pending) - before
        self._held_per_topic[tp.topic] = self._held_per_topic.get(tp.topic, 0) + added
        partition.next = max(partition.next, records[-1].offset + 1)

    def done(self, tp: TopicPartition, offset: int) -> bool:
        """The work started at `offset` is done; False when it was not held (forgotten by a rebalance)."""
        partition = self._partitions.get(tp)
        if partition is None or offset not in partition.pending:
            return False
        partition.pending.discard(offset)
        self._held_per_topic[tp.topic] -= 1
        return True

    def done_below(self, tp: TopicPartition, next_offset: int) -> None:
        """Everything below `next_offset` is done, whether it was read here or settled another way."""
        partition = self._partition(tp)
        finished = {offset for offset in partition.pending if offset < next_offset}
        if finished:
            partition.pending -= finished
            self._held_per_topic[tp.topic] -= len(finished)
        partition.next = max(partition.next, next_offset)

    def held(self, topic: str) -> int:
        return self._held_per_topic.get(topic, 0)

    def position(self, tp: TopicPartition) -> int | None:
        """The offset to commit for `tp` now (the next one to read); None for a partition not tracked."""
        partition = self._partitions.get(tp)
        if partition is None:
            return None
        return min(partition.pending) if partition.pending else partition.next

    def committable(self) -> dict[TopicPartition, int]:
        """Offsets to commit now, only where the position moved since the last commit."""
        ready = {}
        for tp, partition in self._partitions.items():
            position = min(partition.pending) if partition.pending else partition.next
            if position > partition.committed:
                ready[tp] = position
        return ready

    def committed(self, offsets: Mapping[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            partition = self._partitions.get(tp)
            if partition is not None:
                partition.committed = offset

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            partition = self._partitions.pop(tp, None)
            if partition is not None:
                self._held_per_topic[tp.topic] -= len(partition.pending)


@dataclass(frozen=True)
class Fetch:
    """One fetch: how long it may wait for records and how many it may return."""

    timeout_s: float = 0.5
    max_records: int | None = 500


@dataclass(frozen=True)
class ConsumerOptions:
    group_id: str
    client_id: str
    # The dead letters' `consumer` field: who gave up on the record.
    consumer_name: str
    # "record": each record is one piece of work, done on its own (out of order). "fetch": a partition's
    # records of one fetch are one piece of work, done by its first offset (or by done_below).
    unit: Literal["record", "fetch"] = "record"
    fetch: Fetch = Fetch()
    # Committing is a round trip to the group coordinator: done at most this often, apart from the fetch
    # loop. None: only when the service calls commit() (and on revocation and close).
    commit_interval_s: float | None = 1.0
    # Pieces of work held per topic at which fetching that topic pauses; it resumes once no more than
    # resume_fraction of the bound is held. None: no bound.
    max_in_flight_per_topic: int | None = None
    resume_fraction: float = 0.5
    # Static group membership (Kafka's group.instance.id): a restarted member takes its partitions back
    # at once instead of waiting out the session timeout of the member it replaces; close() leaves.
    instance_id: str | None = None
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    max_poll_interval_ms: int = 300_000
    max_partition_fetch_bytes: int = 1024 * 1024
    # How long the broker holds a fetch for more records (BULK_FETCH for a reader no reply waits for).
    broker_fetch: FetchBatching = IMMEDIATE_FETCH
    # Sticky assignment keeps partitions where they are across rebalances (a gateway's connections).
    sticky: bool = False

    def __post_init__(self) -> None:
        if self.max_in_flight_per_topic is not None and self.max_in_flight_per_topic < 1:
            raise ValueError(
                f"max_in_flight_per_topic must be at least 1, not {self.max_in_flight_per_topic}"
            )
        if not 0 <= self.resume_fraction < 1:
            raise ValueError(f"resume_fraction must be in [0, 1), not {self.resume_fraction}")
        if self.commit_interval_s is not None and self.commit_interval_s <= 0:
            raise ValueError(f"commit_interval_s must be positive, not {self.commit_interval_s}")


class ConsumerService(ABC):
    """What a service provides to its AtLeastOnceConsumer."""

    @abstractmethod
    async def apply(self, fetched: Mapping[TopicPartition, Records]) -> None:
        """Take one fetch (possibly empty: called once per poll). Each piece of work it starts must end
        with the consumer's done() (or done_below()), or be abandoned to redelivery by a rebalance."""

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        """Partitions now owned. Records of partitions paused here are not fetched until resumed."""
        return None

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        """Partitions about to go: finish or abandon their work; what is done is committed after."""
        return None

    def next_fetch(self, usual: Fetch) -> Fetch:
        return usual


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, consumer: AtLeastOnceConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._consumer._revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._consumer._assigned(set(assigned))


class AtLeastOnceConsumer:
    def __init__(
        self,
        service: ConsumerService,
        specs: Iterable[TopicSpec],
        *,
        namespace: str,
        bootstrap: str,
        producer: AIOKafkaProducer,
        options: ConsumerOptions,
    ) -> None:
        self._service = service
        self._options = options
        self._producer = producer
        self._dead_letter_specs = {spec.name_in(namespace): dead_letter_topic(spec) for spec in specs}
        self._namespace = namespace
        self._bootstrap = bootstrap
        self._tracker = OffsetTracker()
        self._kafka = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=options.group_id,
            client_id=options.client_id,
            group_instance_id=options.instance_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=options.session_timeout_ms,
            heartbeat_interval_ms=options.heartbeat_interval_ms,
            max_poll_interval_ms=options.max_poll_interval_ms,
            max_partition_fetch_bytes=options.max_partition_fetch_bytes,
            fetch_min_bytes=options.broker_fetch.min_bytes,
            fetch_max_wait_ms=options.broker_fetch.max_wait_ms,
            partition_assignment_strategy=(
                (StickyPartitionAssignor,) if options.sticky else (RoundRobinPartitionAssignor,)
            ),
        )
        bound = options.max_in_flight_per_topic
        self._resume_at = int(bound * options.resume_fraction) if bound is not None else 0
        # Topics paused by backpressure, and partitions the service paused itself.
        self._full: set[str] = set()
        self._held: set[TopicPartition] = set()
        self._stopping = asyncio.Event()

    # lifecycle

    async def start(self) -> None:
        self._kafka.subscribe(list(self._dead_letter_specs), listener=_Rebalance(self))
        await self._kafka.start()

    async def run(self) -> None:
        """Fetch and apply until stop(); close() afterwards commits and leaves the group."""
        committer = None
        if self._options.commit_interval_s is not None:
            committer = asyncio.create_task(self._commit_periodically(self._options.commit_interval_s))
        per_record = self._options.unit == "record"
        tracker = self._tracker
        try:
            while not self._stopping.is_set():
                fetch = self._service.next_fetch(self._options.fetch)
                fetched = await self._kafka.getmany(
                    timeout_ms=int(fetch.timeout_s * 1000), max_records=fetch.max_records
                )
                for tp, records in fetched.items():
                    if per_record:
                        tracker.started_each(tp, records)
                    else:
                        tracker.started(tp, records[0].offset, records[-1].offset)
                self._pause_full(fetched)
                await self._service.apply(fetched)
        finally:
            if committer is not None:
                committer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await committer

    def stop(self) -> None:
        self._stopping.set()

    async def close(self) -> None:
        """Commit what is done and leave the group (the service has finished or abandoned its work)."""
        try:
            await self._commit_logged()
        finally:
            await self._kafka.stop()
        # A static member's consumer does not leave by itself (a crash must not cost it its partitions);
        # this planned stop hands them on at once.
        instance_id = self._options.instance_id
        if instance_id is not None:
            try:
                await leave_group(self._bootstrap, self._options.group_id, instance_id)
            except (KafkaError, OSError) as exc:
                log.warning("%s: leaving group %s failed: %r", instance_id, self._options.group_id, exc)

    # progress

    def done(self, tp: TopicPartition, offset: int) -> None:
        """The work started at `offset` is done: its offset may be committed once all before it are."""
        if self._tracker.done(tp, offset) and tp.topic in self._full:
            self._resume_if_drained(tp.topic)

    def done_below(self, tp: TopicPartition, next_offset: int) -> None:
        """Everything of `tp` below `next_offset` is done (a batch, or records a replay settled)."""
        self._tracker.done_below(tp, next_offset)
        if tp.topic in self._full:
            self._resume_if_drained(tp.topic)

    async def commit(self, metadata: Mapping[TopicPartition, str] | None = None) -> None:
        """Commit every assigned partition whose done prefix moved. Partitions in `metadata` are committed
        at their current position even if it did not move, with that metadata (a service's record of
        what it is about to do there). Raises KafkaError when the group does not take the commit."""
        assignment = self._kafka.assignment()
        offsets = {
            tp: OffsetAndMetadata(o, "") for tp, o in self._tracker.committable().items() if tp in assignment
        }
        for tp, note in (metadata or {}).items():
            position = self._tracker.position(tp)
            if position is None or tp not in assignment:
                raise IllegalStateError(f"{tp} is not assigned to this member")
            offsets[tp] = OffsetAndMetadata(position, note)
        if not offsets:
            return
        await self._kafka.commit(offsets)
        self._tracker.committed({tp: meta.offset for tp, meta in offsets.items()})

    async def _commit_logged(self) -> None:
        try:
            await self.commit()
        except KafkaError as exc:
            # A rebalance in progress: the next owner re-reads from the last commit.
            log.warning("%s: offset commit failed: %r", self._options.group_id, exc)

    async def _commit_periodically(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await self._commit_logged()

    async def dead_letter(self, record: ConsumerRecord[bytes, bytes], error: str) -> None:
        """Put the record on its topic's dead-letter topic; returns once Kafka acknowledged it, so the
        offset that drops the record is committed only after."""
        spec = self._dead_letter_specs[record.topic]
        letter = dead_letter(record, error, self._options.consumer_name)
        log.warning(
            "%s[%d]@%d to the dead-letter topic: %s", record.topic, record.partition, record.offset, error
        )
        await self._producer.send_and_wait(
            spec.name_in(self._namespace), spec.codec.encode(letter), record.key
        )

    # partitions

    def assignment(self) -> set[TopicPartition]:
        return set(self._kafka.assignment())

    def partition_count(self, topic: str) -> int:
        return len(self._kafka.partitions_for_topic(topic) or ())

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        """Stop fetching these partitions until resume()."""
        partitions = set(partitions)
        self._held |= partitions
        self._kafka.pause(*partitions)

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        partitions = set(partitions)
        self._held -= partitions
        assigned = self._kafka.assignment()
        self._kafka.resume(*(tp for tp in partitions if tp in assigned and tp.topic not in self._full))

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._kafka.seek(tp, offset)

    def _pause_full(self, fetched: Mapping[TopicPartition, Records]) -> None:
        bound = self._options.max_in_flight_per_topic
        if bound is None:
            return
        for topic in {tp.topic for tp in fetched}:
            if topic not in self._full and self._tracker.held(topic) >= bound:
                self._full.add(topic)
                self._kafka.pause(*(tp for tp in self._kafka.assignment() if tp.topic == topic))

    def _resume_if_drained(self, topic: str) -> None:
        if self._tracker.held(topic) > self._resume_at:
            return
        self._full.discard(topic)
        self._kafka.resume(
            *(tp for tp in self._kafka.assignment() if tp.topic == topic and tp not in self._held)
        )

    async def _revoked(self, partitions: set[TopicPartition]) -> None:
        await self._service.on_revoked(partitions)
        await self._commit_logged()
        self._tracker.forget(partitions)
        self._held -= partitions
        # Abandoned work no longer holds its topic's bound.
        for topic in list(self._full):
            self._resume_if_drained(topic)

    async def _assigned(self, partitions: set[TopicPartition]) -> None:
        # No await before the pause: aiokafka starts fetching new partitions as soon as this yields.
        full = [tp for tp in partitions if tp.topic in self._full]
        if full:
            self._kafka.pause(*full)
        await self._service.on_assigned(partitions)
