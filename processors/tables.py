"""The processors' Faust tables: pydantic values in memory, JSON in the changelog, co-partitioned with
`discord.events` (GUILD_PARTITIONS, keyed by the partition key)."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import faust
from aiokafka.partitioner import murmur2
from faust.serializers.codecs import Codec
from pydantic import BaseModel, TypeAdapter

from models import table_keys
from models.deployments import RoutingRecord
from models.processor_state import (
    AnnouncementBook,
    ArcBook,
    AutomodWindow,
    EventBook,
    FloorState,
    GameBook,
    GameRecord,
    GuildDirectory,
    Leaderboard,
    LevelEntry,
    MusicQueue,
    ReplyStreak,
    RoutineLog,
    TrackedUsers,
    UtilityBook,
    Wallets,
    WarnRecord,
)
from models.state import ChannelContext, MoodState, Relationship
from processors.engine import Tables
from streams.catalog import GUILD_PARTITIONS, TopicSpec

ModelT = TypeVar("ModelT", bound=BaseModel)


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
    table.key_serializer = "raw"
    table.value_serializer = ModelCodec(model)
    return app.tables.add(table)


# Every table's value model, by table name (the field of `Tables`).
TABLE_MODELS: dict[str, type[BaseModel]] = {
    table_keys.RoutingKey.TABLE: RoutingRecord,
    table_keys.DirectoryKey.TABLE: GuildDirectory,
    table_keys.ContextKey.TABLE: ChannelContext,
    table_keys.RelationshipKey.TABLE: Relationship,
    table_keys.MoodKey.TABLE: MoodState,
    table_keys.MusicKey.TABLE: MusicQueue,
    table_keys.WarnKey.TABLE: WarnRecord,
    table_keys.LevelKey.TABLE: LevelEntry,
    table_keys.LeaderboardKey.TABLE: Leaderboard,
    table_keys.AutomodKey.TABLE: AutomodWindow,
    table_keys.StreakKey.TABLE: ReplyStreak,
    table_keys.UtilityKey.TABLE: UtilityBook,
    table_keys.TrackedKey.TABLE: TrackedUsers,
    table_keys.GamesKey.TABLE: GameBook,
    table_keys.GameRecordKey.TABLE: GameRecord,
    table_keys.GameBoardKey.TABLE: Leaderboard,
    table_keys.RoutineKey.TABLE: RoutineLog,
    table_keys.FloorKey.TABLE: FloorState,
    table_keys.EconomyKey.TABLE: Wallets,
    table_keys.ArcKey.TABLE: ArcBook,
    table_keys.AnnouncementKey.TABLE: AnnouncementBook,
    table_keys.HostedEventsKey.TABLE: EventBook,
}

# Tables written outside any event (the catch-up after a rebalance, the timers of reminders, games,
# routines and arcs, announcements, hosted events): their changelog partition comes from the key.
PARTITIONED_BY_KEY = frozenset(
    key.TABLE
    for key in (
        table_keys.RoutingKey,
        table_keys.UtilityKey,
        table_keys.GamesKey,
        table_keys.RoutineKey,
        table_keys.ArcKey,
        table_keys.AnnouncementKey,
        table_keys.HostedEventsKey,
    )
)


def create_tables(app: faust.App) -> Tables:
    return Tables(
        **{
            name: model_table(app, name, model, use_partitioner=name in PARTITIONED_BY_KEY)
            for name, model in TABLE_MODELS.items()
        }
    )


def changelog_topic(app_id: str, table: str) -> str:
    """Faust's name for a table's changelog topic (`app_id` with its namespace)."""
    return f"{app_id}-{table}-changelog"


def partition_of(key: str, partitions: int = GUILD_PARTITIONS) -> int:
    """The partition the Kafka clients' default partitioner (murmur2, as in Java) gives a key."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


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
