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
    IdlePlayers,
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


def create_tables(app: faust.App) -> Tables:
    return Tables(
        # Written from the catch-up after a rebalance too, outside any event: partitioned by key.
        routing=model_table(app, table_keys.RoutingKey.TABLE, RoutingRecord, use_partitioner=True),
        directory=model_table(app, table_keys.DirectoryKey.TABLE, GuildDirectory),
        context=model_table(app, table_keys.ContextKey.TABLE, ChannelContext),
        relationships=model_table(app, table_keys.RelationshipKey.TABLE, Relationship),
        moods=model_table(app, table_keys.MoodKey.TABLE, MoodState),
        music=model_table(app, table_keys.MusicKey.TABLE, MusicQueue),
        # Written by the idle voice timer: partitioned by key.
        voice_idle=model_table(app, table_keys.VoiceIdleKey.TABLE, IdlePlayers, use_partitioner=True),
        warns=model_table(app, table_keys.WarnKey.TABLE, WarnRecord),
        levels=model_table(app, table_keys.LevelKey.TABLE, LevelEntry),
        leaderboards=model_table(app, table_keys.LeaderboardKey.TABLE, Leaderboard),
        automod=model_table(app, table_keys.AutomodKey.TABLE, AutomodWindow),
        streaks=model_table(app, table_keys.StreakKey.TABLE, ReplyStreak),
        utility=model_table(app, table_keys.UtilityKey.TABLE, UtilityBook, use_partitioner=True),
        tracked=model_table(app, table_keys.TrackedKey.TABLE, TrackedUsers),
        # Written from the game timer too: partitioned by key.
        games=model_table(app, table_keys.GamesKey.TABLE, GameBook, use_partitioner=True),
        game_records=model_table(app, table_keys.GameRecordKey.TABLE, GameRecord),
        game_boards=model_table(app, table_keys.GameBoardKey.TABLE, Leaderboard),
        # Written by the routine timer, outside any event: partitioned by key.
        routines=model_table(app, table_keys.RoutineKey.TABLE, RoutineLog, use_partitioner=True),
        floor=model_table(app, table_keys.FloorKey.TABLE, FloorState),
        economy=model_table(app, table_keys.EconomyKey.TABLE, Wallets),
        # Written by the routine timer too: partitioned by key.
        arcs=model_table(app, table_keys.ArcKey.TABLE, ArcBook, use_partitioner=True),
        # Written by the announcement timer too: partitioned by key.
        announcements=model_table(
            app, table_keys.AnnouncementKey.TABLE, AnnouncementBook, use_partitioner=True
        ),
        # Written by the events timer too: partitioned by key.
        hosted_events=model_table(app, table_keys.HostedEventsKey.TABLE, EventBook, use_partitioner=True),
    )


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
