"""The state tables' keys: every table's key built, encoded and parsed back, in exactly the format the
changelogs already hold, and malformed keys rejected naming the table."""

from __future__ import annotations

import dataclasses
from uuid import UUID

import pytest

from models.events import partition_key
from models.table_keys import (
    AnnouncementKey,
    ArcKey,
    AutomodKey,
    ContextKey,
    ContextSlotKey,
    DirectoryKey,
    EconomyKey,
    FloorKey,
    FloorSlotKey,
    GameBoardKey,
    GameRecordKey,
    GamesKey,
    HostedEventsKey,
    LeaderboardKey,
    LevelKey,
    MalformedTableKey,
    MoodKey,
    MusicKey,
    RelationshipKey,
    RoutineKey,
    RoutingKey,
    StreakKey,
    TableKey,
    TrackedKey,
    UtilityKey,
    VoiceIdleKey,
    WalletKey,
    WarnKey,
    ring_slot_key,
)
from processors.engine import Tables

GUILD, BOT, CHANNEL, USER = "4100000000000000001", "4200000000000000002", "4300000000000000003", "44"
DM = partition_key(None, BOT)
DEPLOYMENT = UUID("00000000-0000-4000-8000-00000000a001")
D = str(DEPLOYMENT)

# (key as the processors wrote it before the key classes existed, the same key built now)
WRITTEN_BEFORE: list[tuple[str, TableKey]] = [
    (GUILD, RoutingKey(GUILD)),
    ("dm:4200000000000000002", RoutingKey(DM)),
    (GUILD, DirectoryKey(GUILD)),
    (GUILD, UtilityKey(GUILD)),
    (GUILD, EconomyKey(GUILD)),
    (GUILD, HostedEventsKey(GUILD)),
    (f"{GUILD}/{CHANNEL}", FloorKey(GUILD, CHANNEL)),
    (f"{GUILD}/{CHANNEL}", ContextKey(GUILD, CHANNEL)),
    (f"dm:{BOT}/{CHANNEL}", ContextKey(DM, CHANNEL)),
    (f"{GUILD}/{D}", MoodKey(GUILD, DEPLOYMENT)),
    (f"dm:{BOT}/{D}", MoodKey(DM, DEPLOYMENT)),
    (f"{GUILD}/{D}", MusicKey(GUILD, DEPLOYMENT)),
    (f"{GUILD}/{D}", LeaderboardKey(GUILD, DEPLOYMENT)),
    (f"{GUILD}/{D}", TrackedKey(GUILD, DEPLOYMENT)),
    (GUILD, RoutineKey(GUILD)),
    (GUILD, ArcKey(GUILD)),
    (GUILD, AnnouncementKey(GUILD)),
    (f"{GUILD}/{D}/{USER}", RelationshipKey(GUILD, DEPLOYMENT, USER)),
    (f"dm:{BOT}/{D}/{USER}", RelationshipKey(DM, DEPLOYMENT, USER)),
    (f"{GUILD}/{D}/{USER}", WarnKey(GUILD, DEPLOYMENT, USER)),
    (f"{GUILD}/{D}/{USER}", LevelKey(GUILD, DEPLOYMENT, USER)),
    (f"{GUILD}/{D}/{CHANNEL}", StreakKey(GUILD, DEPLOYMENT, CHANNEL)),
    (f"{GUILD}/{D}/{CHANNEL}/{USER}", AutomodKey(GUILD, DEPLOYMENT, CHANNEL, USER)),
    # Tables added with the key classes.
    (GUILD, GamesKey(GUILD)),
    (f"{GUILD}/{D}", GameBoardKey(GUILD, DEPLOYMENT)),
    (f"{GUILD}/{D}/{USER}", GameRecordKey(GUILD, DEPLOYMENT, USER)),
    (GUILD, VoiceIdleKey(GUILD)),
    (f"{GUILD}/{USER}", WalletKey(GUILD, USER)),
    # The rings' slots (processors.ring).
    (f"{GUILD}/{CHANNEL}/7", ContextSlotKey(GUILD, CHANNEL, "7")),
    (f"dm:{BOT}/{CHANNEL}/0", ContextSlotKey(DM, CHANNEL, "0")),
    (f"{GUILD}/{CHANNEL}/15", FloorSlotKey(GUILD, CHANNEL, "15")),
]
# The values kept as rings are two tables each: their heads (under the value's key) and their slots.
RINGS = {"context": ("context_heads", "context_slots"), "floor": ("floor_heads", "floor_rulings")}


@pytest.mark.parametrize(("raw", "built"), WRITTEN_BEFORE, ids=lambda v: getattr(v, "TABLE", None))
def test_a_key_written_before_parses_to_the_built_key_and_re_encodes_identically(
    raw: str, built: TableKey
) -> None:
    assert built.encode() == raw
    parsed = type(built).parse(raw)
    assert parsed == built
    assert parsed.encode() == raw


def test_every_table_has_one_key_class() -> None:
    key_classes = {type(built) for _, built in WRITTEN_BEFORE}
    tables = [name for f in dataclasses.fields(Tables) for name in RINGS.get(f.name, (f.name,))]
    assert sorted(k.TABLE for k in key_classes) == sorted(tables)


def test_a_ring_slot_key_is_its_key_class_encoding() -> None:
    head = ContextKey(GUILD, CHANNEL).encode()
    assert ring_slot_key(head, 7) == ContextSlotKey(GUILD, CHANNEL, "7").encode()
    assert ring_slot_key(FloorKey(DM, CHANNEL).encode(), 0) == FloorSlotKey(DM, CHANNEL, "0").encode()


def test_keys_of_different_tables_are_different_keys() -> None:
    assert MoodKey(GUILD, DEPLOYMENT) != MusicKey(GUILD, DEPLOYMENT)
    assert MoodKey(GUILD, DEPLOYMENT).encode() == MusicKey(GUILD, DEPLOYMENT).encode()
    assert len({MoodKey(GUILD, DEPLOYMENT), MoodKey(GUILD, DEPLOYMENT)}) == 1


@pytest.mark.parametrize(
    ("key_type", "raw", "problem"),
    [
        (RoutingKey, f"{GUILD}/{CHANNEL}", "routing key .*: expected 1 part"),
        (ContextKey, GUILD, r"context_heads key .*: expected 2 part\(s\), partition_key/channel_id"),
        (ContextSlotKey, f"{GUILD}/{CHANNEL}", r"context_slots key .*: expected 3 part\(s\)"),
        (RelationshipKey, f"{GUILD}/{D}", "relationships key .*: expected 3 part"),
        (AutomodKey, f"{GUILD}/{D}/{CHANNEL}/{USER}/9", "automod key .*: expected 4 part"),
        (MoodKey, f"{GUILD}/not-a-uuid", "moods key .*: deployment_id 'not-a-uuid' is not a canonical UUID"),
        (MusicKey, f"{GUILD}/{D.upper()}", "music key .*: deployment_id .* is not a canonical UUID"),
        (WarnKey, f"{GUILD}/{D.replace('-', '')}/{USER}", "warns key .*: deployment_id .* not a canonical"),
        (LevelKey, f"{GUILD}/{D}/", "levels key: user_id '' must be non-empty"),
        (StreakKey, f"/{D}/{CHANNEL}", "streaks key: partition_key '' must be non-empty"),
        (UtilityKey, "", "utility key: partition_key '' must be non-empty"),
    ],
)
def test_a_malformed_key_is_rejected_naming_its_table(
    key_type: type[TableKey], raw: str, problem: str
) -> None:
    with pytest.raises(MalformedTableKey, match=problem):
        key_type.parse(raw)


def test_a_part_holding_the_separator_cannot_be_built() -> None:
    with pytest.raises(MalformedTableKey, match="warns key: user_id '1/2' must be non-empty and without '/'"):
        WarnKey(GUILD, DEPLOYMENT, "1/2")
    with pytest.raises(MalformedTableKey, match="context_heads key: channel_id ''"):
        ContextKey(GUILD, "")
