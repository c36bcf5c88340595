"""The processors' Faust tables: pydantic values in memory, JSON in the changelog, co-partitioned with
`discord.events` (GUILD_PARTITIONS, keyed by the partition key). The channel contexts and the floors'
rulings, lists that grow every message, are kept as rings of per-item slots (processors.ring.ListRing), so
that a message writes small records, not the whole list."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Iterator, MutableMapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, Generic, TypeVar

import faust
from faust.serializers.codecs import Codec
from faust.types import ProducerT
from pydantic import BaseModel, TypeAdapter

from processors.engine import Tables
from processors.ring import ListRing, RingLayout
from processors.table_catalog import PARTITIONED_BY_KEY, RING_TABLES, TABLE_MODELS
from streams.catalog import GUILD_PARTITIONS, TopicSpec

ModelT = TypeVar("ModelT", bound=BaseModel)
ItemT = TypeVar("ItemT", bound=BaseModel)
V = TypeVar("V")


class ModelCodec(Codec, Generic[ModelT]):
    """Changelog values: a pydantic model as JSON. The memory store keeps the model objects themselves, so
    the codec runs only when a value is written and when a table recovers."""

    def __init__(self, model: type[ModelT], **kwargs: Any) -> None:
        super().__init__(model=model, **kwargs)
        self._adapter: TypeAdapter[ModelT] = TypeAdapter(model)

    def _dumps(self, value: Any) -> bytes:
        return self._adapter.dump_json(value)

    def _loads(self, raw: bytes) -> Any:
        return self._adapter.validate_json(raw)


class ChangelogBatch:
    """The table writes made in one block of a task (a batch of events, a timer's firing for one key): each
    written key's last value (or its deletion) goes to the changelog once, when the block ends. Recovery
    keeps only each key's last record, so the records in between were of no use; a batch's events are
    acked only once Kafka acknowledged the records `send` sent (`deliveries`)."""

    def __init__(self) -> None:
        # By (view's id, key): a mapping compares by content, so a view cannot be a dict key itself.
        self._written: dict[tuple[int, str], tuple[TableView[Any], int | None]] = {}
        # The partition of the event being handled: a table not partitioned by key writes its changelog
        # on the partition of the event that changed it.
        self.partition: int | None = None
        # Kafka's answers for the records sent: an event's writes are saved once these resolve.
        self.deliveries: list[Awaitable[Any]] = []

    def written(self, view: TableView[Any], key: str) -> None:
        self._written[(id(view), key)] = (view, self.partition)

    def abandon(self) -> None:
        """Sends none of the writes made so far: the worker stops, and its tables recover from the
        changelogs without them."""
        self._written.clear()

    async def send(self, producer: ProducerT) -> None:
        """Straight to the producer: Faust's own path for a table write (a future message queued in its
        producer buffer, sent by a task of its own, one wake-up each) cost more than the write. Kafka's
        answers go to `deliveries`: the events that wrote the records count as handled once they are in
        the changelogs (processors.app.DeliveredAcks)."""
        written, self._written = self._written, {}
        for (_, key), (view, partition) in written.items():
            self.deliveries.append(await producer.send(*view.changelog_record(key, partition), None, None))


# The batch of the running task's writes (each task, event agent or timer, opens its own).
_current_batch: ContextVar[ChangelogBatch | None] = ContextVar("changelog_batch", default=None)


def _writing_batch() -> ChangelogBatch:
    """The batch a table write belongs to. Every write is made within one: a write sent on its own, through
    Faust's producer buffer, could reach the changelog after a later write of the same key sent by a batch,
    and recovery would then restore the older value."""
    batch = _current_batch.get()
    if batch is None:
        raise RuntimeError("a table write outside coalesced_writes: its changelog record would not be sent")
    return batch


@asynccontextmanager
async def coalesced_writes(producer: ProducerT) -> AsyncIterator[ChangelogBatch]:
    """Table writes within the block, in this task, reach the changelogs through `producer` once per key at
    its end (also when it raises: the stores hold the writes, as they would have without the batch)."""
    batch = ChangelogBatch()
    token = _current_batch.set(batch)
    try:
        yield batch
    finally:
        _current_batch.reset(token)
        await batch.send(producer)


class TableView(MutableMapping[str, V]):
    """A Faust table as the engine uses it: reads go straight to its store (Faust's own read path adds only
    monitoring hooks, at a few microseconds a read, and the engine reads a dozen values an event); writes
    and deletes, made within `coalesced_writes`, go to the store, their changelog records sent when the
    batch ends."""

    def __init__(self, table: faust.Table[str, V], codec: Codec) -> None:
        self._store = table.data
        self._by_key = table.use_partitioner
        self._changelog_topic = table.changelog_topic_name
        self._codec = codec

    def __getitem__(self, key: str) -> V:
        return self._store[key]

    def get(self, key: str, default: Any = None) -> Any:
        # Not the store's own get, which raises and catches a KeyError for a missing key (a microsecond).
        return self._store[key] if key in self._store else default  # noqa: SIM401

    def __setitem__(self, key: str, value: V) -> None:
        batch = _writing_batch()
        self._store[key] = value
        batch.written(self, key)

    def __delitem__(self, key: str) -> None:
        batch = _writing_batch()
        del self._store[key]
        batch.written(self, key)

    def changelog_record(
        self, key: str, event_partition: int | None
    ) -> tuple[str, bytes, bytes | None, int | None]:
        """(topic, key, value, partition) of the key's changelog record as the value stands (a tombstone when
        deleted), serialized as the table's own writes are; no partition: the producer's partitioner picks it
        from the key."""
        partition = None if self._by_key else event_partition
        value = self._codec.dumps(self._store[key]) if key in self._store else None
        return self._changelog_topic, key.encode(), value, partition

    def __iter__(self) -> Iterator[str]:
        return iter(self._store)

    def __len__(self) -> int:
        return len(self._store)


def model_table(app: faust.App, name: str, model: type[BaseModel], *, use_partitioner: bool = False) -> Any:
    """A table of `model` values under the encoded keys of `models/table_keys.py`, sent raw, so that a key's
    changelog partition (when the partitioner picks it) is the partition of the same key on
    `discord.events`."""
    table: faust.Table[str, BaseModel] = faust.Table(
        app,
        name=name,
        key_type=str,
        partitions=GUILD_PARTITIONS,
        use_partitioner=use_partitioner,
        beacon=app.tables.beacon,
        help=f"{model.__name__} values",
    )
    codec = ModelCodec(model)
    table.key_serializer = "raw"
    table.value_serializer = codec
    app.tables.add(table)
    return TableView(table, codec)


def ring_table(
    app: faust.App, heads: str, slots: str, layout: RingLayout[ModelT, ItemT]
) -> ListRing[ModelT, ItemT]:
    """A ring's two tables: its heads, and its slots under the keys of the heads' ring_slot_key."""
    return layout.over(model_table(app, heads, layout.head_model), model_table(app, slots, layout.slot_model))


def create_tables(app: faust.App) -> Tables:
    return Tables(
        **{
            name: model_table(app, name, model, use_partitioner=name in PARTITIONED_BY_KEY)
            for name, model in TABLE_MODELS.items()
        },
        **{
            name: ring_table(app, heads, slots, layout)
            for name, (heads, slots, layout) in RING_TABLES.items()
        },
    )


def changelog_specs(app: faust.App) -> tuple[TopicSpec, ...]:
    """The tables' changelog topics as catalog entries, so they can be created (and seen in the metadata)
    before Faust starts: Faust declares them itself but may read the metadata before they appear in it,
    and then fails the table's partition check for events in flight."""
    return tuple(
        TopicSpec(
            name=table.changelog_topic_name,
            key="the table key",
            value=bytes,
            partitions=GUILD_PARTITIONS,
            compacted=True,
            producers=("processors",),
            consumers=("processors",),
        )
        for table in app.tables.values()
    )
