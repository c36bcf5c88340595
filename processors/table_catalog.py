"""What the processors' tables are, without Faust: each table's value model, the rings, the tables whose
changelog partition comes from the key, the changelog topics' names and a key's partition. The erasure, the
access export, the playground and the backfill read the changelogs through these; processors/tables.py
makes the tables from them."""

from __future__ import annotations

from typing import Any

from aiokafka.partitioner import murmur2
from pydantic import BaseModel

from models import table_keys
from models.deployments import RoutingRecord
from models.processor_state import (
    AnnouncementBook,
    ArcBook,
    AutomodWindow,
    EventBook,
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
    Wallet,
    Wallets,
    WarnRecord,
)
from models.state import MoodState, Relationship
from processors.ring import CONTEXT_RING, FLOOR_RING, RingLayout
from streams.catalog import GUILD_PARTITIONS

# The processors' Faust app id: their consumer group and their tables' changelogs are named after it (with
# the topic namespace before it). Workers with the same id share the partitions.
PROCESSORS_APP_ID = "deep-processors"

# Every plain table's value model, by table name (the field of `Tables`).
TABLE_MODELS: dict[str, type[BaseModel]] = {
    table_keys.RoutingKey.TABLE: RoutingRecord,
    table_keys.DirectoryKey.TABLE: GuildDirectory,
    table_keys.RelationshipKey.TABLE: Relationship,
    table_keys.MoodKey.TABLE: MoodState,
    table_keys.MusicKey.TABLE: MusicQueue,
    table_keys.VoiceIdleKey.TABLE: IdlePlayers,
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
    table_keys.WalletKey.TABLE: Wallet,
    table_keys.EconomyKey.TABLE: Wallets,
    table_keys.ArcKey.TABLE: ArcBook,
    table_keys.AnnouncementKey.TABLE: AnnouncementBook,
    table_keys.HostedEventsKey.TABLE: EventBook,
}

# The rings (the lists that grow every message), by their field of `Tables`: the tables of their heads and
# of their slots, and their layout.
RING_TABLES: dict[str, tuple[str, str, RingLayout[Any, Any]]] = {
    "context": (table_keys.ContextKey.TABLE, table_keys.ContextSlotKey.TABLE, CONTEXT_RING),
    "floor": (table_keys.FloorKey.TABLE, table_keys.FloorSlotKey.TABLE, FLOOR_RING),
}

# Tables written outside any event (the catch-up after a rebalance, the timers of reminders, games,
# routines and arcs, announcements, hosted events, idle voice players): their changelog partition comes
# from the key.
PARTITIONED_BY_KEY = frozenset(
    key.TABLE
    for key in (
        table_keys.RoutingKey,
        table_keys.VoiceIdleKey,
        table_keys.UtilityKey,
        table_keys.GamesKey,
        table_keys.RoutineKey,
        table_keys.ArcKey,
        table_keys.AnnouncementKey,
        table_keys.HostedEventsKey,
    )
)


def changelog_topic(app_id: str, table: str) -> str:
    """Faust's name for a table's changelog topic (`app_id` with its namespace)."""
    return f"{app_id}-{table}-changelog"


def partition_of(key: str, partitions: int = GUILD_PARTITIONS) -> int:
    """The partition the Kafka clients' default partitioner (murmur2, as in Java) gives a key."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions
