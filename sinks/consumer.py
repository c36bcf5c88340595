"""One sink: a consumer group that copies one topic into its ClickHouse table in Arrow batches.

A batch is flushed at `flush_rows` rows or once it is `flush_interval_s` old. A flush commits the batch's
plan, inserts with the plan's deduplication token, then commits the offsets past it (see sinks/batch.py):
a sink killed at any point and restarted inserts every record once. A record the topic's codec rejects
goes to the dead-letter topic and the sink carries on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError, IllegalStateError
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from models.events import EventEnvelope
from settings import IMMEDIATE_FETCH, FetchBatching
from sinks.batch import Batch, BatchPlan
from sinks.tables import Row, SinkTable
from streams.catalog import TopicSpec
from streams.codec import CodecError
from streams.consumer import AtLeastOnceConsumer, ConsumerOptions, ConsumerService, Fetch
from streams.sealing import DataKeys, open_payload, opened_or_clear

log = logging.getLogger(__name__)

MAX_INSERT_BACKOFF_S = 30.0


@dataclass(frozen=True)
class SinkOptions:
    flush_rows: int = 100_000
    flush_interval_s: float = 1.0
    # Static group membership (Kafka's group.instance.id): a restarted sink takes its partitions back at
    # once instead of waiting out the session timeout of the member it replaces. Unique per sink process.
    instance_id: str | None = None
    # Rows wait for flush_interval_s anyway: the broker may hold fetches for more (settings.BULK_FETCH).
    broker_fetch: FetchBatching = IMMEDIATE_FETCH


def sink_group(namespace: str, table: SinkTable[Any]) -> str:
    """The consumer group of a table's sink (one group per sink)."""
    return f"{namespace}deep.sinks.{table.table}"


class TableWriter:
    """Inserts Arrow batches into one table of one database; retries until the insert succeeds, because
    the offsets behind it stay uncommitted until then."""

    def __init__(self, client: Client, database: str, table: SinkTable[Any]) -> None:
        self._client = client
        self.database = database
        self.table = table

    def insert_now(self, rows: list[Row], token: str | None) -> None:
        settings = None
        if token:
            # The views' setting is on by default in recent engines (chdb), not in every server version.
            settings = {
                "insert_deduplication_token": token,
                "deduplicate_blocks_in_dependent_materialized_views": 1,
            }
        self._client.insert_arrow(
            self.table.table, self.table.arrow(rows), database=self.database, settings=settings
        )

    async def insert(self, rows: list[Row], token: str | None) -> None:
        delay = 0.5
        while True:
            try:
                # chdb has no async client: the insert runs in a thread, and the client serialises calls.
                await asyncio.to_thread(self.insert_now, rows, token)
                return
            except ClickHouseError as exc:
                log.warning(
                    "insert into %s.%s failed, retrying in %.1fs: %s",
                    self.database,
                    self.table.table,
                    delay,
                    exc,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_INSERT_BACKOFF_S)


class TopicSink(ConsumerService):
    def __init__(
        self,
        spec: TopicSpec,
        writer: TableWriter,
        *,
        bootstrap: str,
        namespace: str,
        producer: AIOKafkaProducer,
        admin: AIOKafkaAdminClient,
        keys: DataKeys,
        options: SinkOptions = SinkOptions(),
    ) -> None:
        self.spec = spec
        self.keys = keys
        self.writer = writer
        self.topic = spec.name_in(namespace)
        self.group_id = sink_group(namespace, writer.table)
        self.options = options
        self._bootstrap = bootstrap
        self._admin = admin
        # A partition's records of one fetch are one piece of work, done when their batch is in ClickHouse.
        self.consumer = AtLeastOnceConsumer(
            self,
            [spec],
            namespace=namespace,
            bootstrap=bootstrap,
            producer=producer,
            options=ConsumerOptions(
                group_id=self.group_id,
                client_id=self.group_id,
                consumer_name=f"sinks.{writer.table.table}",
                unit="fetch",
                commit_interval_s=None,
                instance_id=options.instance_id,
                max_partition_fetch_bytes=8 * 1024 * 1024,
                broker_fetch=options.broker_fetch,
            ),
        )
        self._batch = Batch()
        self._flush_lock = asyncio.Lock()
        self._held: set[TopicPartition] = set()
        self.inserts = 0  # batches inserted by this process (not counting replays)

    @property
    def token_scope(self) -> str:
        return f"{self.group_id}/{self.topic}"

    def stop(self) -> None:
        """Flush what is batched, commit, and leave the group (run() returns)."""
        self.consumer.stop()

    async def run(self) -> None:
        await self.consumer.start()
        try:
            await self.consumer.run()
            await self.flush()
        finally:
            await self.consumer.close()

    def next_fetch(self, usual: Fetch) -> Fetch:
        # A batch never outgrows flush_rows records, and a fetch never outwaits the batch's age limit.
        wait = max(self.options.flush_interval_s - self._batch.age(), 0.01)
        return Fetch(timeout_s=wait, max_records=self.options.flush_rows - self._batch.records)

    async def apply(self, fetched: Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        for records in fetched.values():
            rows = await self._decode(records, dead_letters=True)
            # The batch is looked up after the await: a rebalance may have flushed the old one.
            self._batch.add(records[0].partition, records[0].offset, records[-1].offset, rows, len(records))
        if self._batch.row_count >= self.options.flush_rows or (
            self._batch and self._batch.age() >= self.options.flush_interval_s
        ):
            await self.flush()
        if self._held:
            await self._replay_held()

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        await self.flush()

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        """Pause newly assigned partitions until the plans recorded for them are replayed: records fetched
        before that would be inserted a second time, under another token."""
        self.consumer.pause(partitions)
        self._held = set(partitions)

    async def _decode(self, records: list[ConsumerRecord[bytes, bytes]], *, dead_letters: bool) -> list[Row]:
        """The rows of one partition's records. A record the codec rejects yields none and goes to the
        dead-letter topic, unless this is a replay: it went there before the plan was recorded."""
        decode, row_of = self.spec.codec.decode, self.writer.table.row
        rows = []
        rejected = []
        for record in records:
            try:
                value = decode(record.value)
                if isinstance(value, EventEnvelope):
                    # The author's facts are in the sealed part.
                    value = await opened_or_clear(value, self.keys)
                else:
                    # A reply's length, say; an erased member's record counts by its clear part.
                    value = await open_payload(value, self.spec.sealing, self.keys) or value
                rows.append(row_of(value))
            except CodecError as exc:
                rejected.append((record, str(exc)))
        if dead_letters and rejected:
            # Sent together and acknowledged before the records join a batch, so a replay of the batch's
            # plan (recorded later) never needs to send them again.
            await asyncio.gather(*(self.consumer.dead_letter(record, error) for record, error in rejected))
        return rows

    async def flush(self) -> None:
        async with self._flush_lock:
            batch, self._batch = self._batch, Batch()
            if not batch:
                return
            plan = batch.plan()
            rows = batch.rows()
            try:
                if rows:
                    # The batch's partitions are held at its first offsets: the plan is committed there.
                    await self.consumer.commit(
                        {self._partition(r.partition): plan.metadata() for r in plan.ranges}
                    )
                    await self.writer.insert(rows, plan.token(self.token_scope))
                    self.inserts += 1
                await self.commit_batch(plan)
            except (CommitFailedError, IllegalStateError) as exc:
                # The group rebalanced: the partitions' next owner re-reads them, or replays the plan if it
                # was recorded, so leaving the batch here loses nothing and counts nothing twice.
                log.warning("%s: batch %s left to the next owner: %s", self.group_id, plan.encode(), exc)

    async def commit_batch(self, plan: BatchPlan) -> None:
        """Commit the offsets past a batch whose rows are in ClickHouse; the plan is cleared with them."""
        for r in plan.ranges:
            self.consumer.done_below(self._partition(r.partition), r.next_offset)
        await self.consumer.commit()

    def _partition(self, partition: int) -> TopicPartition:
        return TopicPartition(self.topic, partition)

    async def _replay_held(self) -> None:
        """Replay the plans a previous owner of the held partitions recorded but did not see through."""
        held, self._held = self._held, set()
        committed = await self._admin.list_consumer_group_offsets(self.group_id, partitions=list(held))
        plans = {BatchPlan.from_metadata(meta.metadata) for meta in committed.values() if meta.offset >= 0}
        for plan in plans:
            if plan is not None:
                await self._replay(plan)
        # Partitions held again by a rebalance during the replay wait for the next round.
        self.consumer.resume(held - self._held)

    async def _replay(self, plan: BatchPlan) -> None:
        """Insert a recorded plan again with its token, then move this member's partitions past it."""
        log.info("%s: replaying batch %s", self.group_id, plan.encode())
        rows = await self._read(plan)
        if rows:
            await self.writer.insert(rows, plan.token(self.token_scope))
        owned = {tp.partition for tp in self.consumer.assignment()}
        mine = BatchPlan(tuple(r for r in plan.ranges if r.partition in owned))
        if mine.ranges:
            await self.commit_batch(mine)
        for r in mine.ranges:
            self.consumer.seek(self._partition(r.partition), r.next_offset)

    async def _read(self, plan: BatchPlan) -> list[Row]:
        """Exactly the records of a plan's ranges (all its partitions, whoever owns them now)."""
        reader = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await reader.start()
        try:
            partitions = {TopicPartition(self.topic, r.partition): r for r in plan.ranges}
            reader.assign(list(partitions))
            for tp, r in partitions.items():
                reader.seek(tp, r.first)
            batch = Batch()
            remaining = set(partitions)
            while remaining:
                fetched = await reader.getmany(*remaining, timeout_ms=1000)
                for tp, records in fetched.items():
                    wanted = [record for record in records if record.offset <= partitions[tp].last]
                    if wanted:
                        rows = await self._decode(wanted, dead_letters=False)
                        batch.add(tp.partition, wanted[0].offset, wanted[-1].offset, rows, len(wanted))
                remaining = {tp for tp in remaining if await reader.position(tp) <= partitions[tp].last}
            return batch.rows()
        finally:
            await reader.stop()
