"""The consumer lag sampler: how far each consumer group is behind on each partition, into ClickHouse.

Lag cannot be read from the timeline (it is about what has not arrived yet), so a sampler asks the broker
for the groups' committed offsets and the partitions' end offsets, and writes a row per group, topic and
partition every `interval_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from models.analytics import ConsumerLag
from models.common import utc_now
from sinks.consumer import TableWriter
from sinks.tables import CONSUMER_LAG

log = logging.getLogger(__name__)


async def sample_lag(
    admin: AIOKafkaAdminClient,
    offsets_reader: AIOKafkaConsumer,
    groups: Sequence[str],
    topic_prefix: str = "",
) -> list[ConsumerLag]:
    """One sample of the groups' lag on topics whose name starts with topic_prefix (a namespace)."""
    sampled_at = utc_now()
    committed = {group: await admin.list_consumer_group_offsets(group) for group in groups}
    partitions = {tp for offsets in committed.values() for tp in offsets if tp.topic.startswith(topic_prefix)}
    ends: dict[TopicPartition, int] = (
        await offsets_reader.end_offsets(sorted(partitions)) if partitions else {}
    )
    return [
        ConsumerLag(
            sampled_at=sampled_at,
            group=group,
            topic=tp.topic,
            partition=tp.partition,
            committed_offset=meta.offset,
            end_offset=ends[tp],
        )
        for group, offsets in committed.items()
        for tp, meta in sorted(offsets.items())
        if tp in ends and meta.offset >= 0
    ]


class LagSampler:
    def __init__(
        self,
        writer: TableWriter,
        admin: AIOKafkaAdminClient,
        bootstrap: str,
        *,
        groups: Sequence[str] | None = None,
        topic_prefix: str = "",
        interval_s: float = 10.0,
    ) -> None:
        """groups None: every consumer group the broker knows."""
        if writer.table is not CONSUMER_LAG:
            raise ValueError(f"the lag sampler writes {CONSUMER_LAG.table}, not {writer.table.table}")
        self._writer = writer
        self._admin = admin
        self._bootstrap = bootstrap
        self._groups = groups
        self._topic_prefix = topic_prefix
        self._interval_s = interval_s
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def _group_ids(self) -> list[str]:
        if self._groups is not None:
            return list(self._groups)
        return sorted(str(group[0]) for group in await self._admin.list_consumer_groups())

    async def run(self) -> None:
        reader = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False)
        await reader.start()
        try:
            while not self._stopping.is_set():
                try:
                    samples = await sample_lag(
                        self._admin, reader, await self._group_ids(), self._topic_prefix
                    )
                except KafkaError as exc:
                    # A missed sample is a gap in a graph; the next one is as good.
                    log.warning("lag sample failed: %s", exc)
                    samples = []
                if samples:
                    await self._writer.insert([CONSUMER_LAG.row(sample) for sample in samples], token=None)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._interval_s)
        finally:
            await reader.stop()
