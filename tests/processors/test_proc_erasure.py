"""Erasing a user from the processors' tables: every table that holds a user loses them, the others' data
stays, and only the partition being erased is touched."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import orjson

from models import table_keys
from models.processor_state import (
    AutomodWindow,
    EventBook,
    EventRun,
    GameBook,
    GameRecord,
    GuildDirectory,
    Leaderboard,
    LeaderboardEntry,
    LevelEntry,
    Reminder,
    RpsChallenge,
    TrackedUsers,
    TriviaAsk,
    TriviaRound,
    UtilityBook,
    Wallet,
    Wallets,
    WarnRecord,
    WindowEntry,
)
from models.state import ChannelContext, ContextMessage, Relationship
from processors.engine import Tables
from processors.erasure import erase_user, held_about, named_tables, on_partition
from processors.ring import CONTEXT_RING
from processors.table_catalog import RING_TABLES, TABLE_MODELS, partition_of

ERASED = "111111111111111111"
OTHER = "222222222222222222"
BOT = "900000000000000000"
CHANNEL = "300000000000000000"
DEPLOYMENT = UUID("00000000-0000-0000-0000-000000000001")
AT = datetime(2026, 12, 1, tzinfo=UTC)


def _guilds_on_two_partitions() -> tuple[str, str]:
    guilds = [str(400000000000000000 + n) for n in range(50)]
    first = guilds[0]
    second = next(g for g in guilds if partition_of(g) != partition_of(first))
    return first, second


def _message(n: int, author: str, content: str, reply_to: str | None = None) -> ContextMessage:
    return ContextMessage(
        message_id=str(500000000000000000 + n),
        author_id=author,
        author_name=f"name-{author[:3]}",
        content=content,
        at=AT,
        reply_to_author_id=reply_to,
    )


def _plant(tables: Tables, guild: str) -> None:
    """One guild's state with both users in every table that can hold a user."""
    d = DEPLOYMENT
    tables.context[table_keys.ContextKey(guild, CHANNEL).encode()] = ChannelContext(
        channel_id=CHANNEL,
        messages=[
            _message(1, ERASED, "my cat is called Biscuit"),
            _message(2, OTHER, f"hey <@{ERASED}> how is the cat"),
            _message(3, OTHER, "it rains", reply_to=ERASED),
            _message(4, OTHER, "other user's own words"),
        ],
    )
    for user in (ERASED, OTHER):
        tables.relationships[table_keys.RelationshipKey(guild, d, user).encode()] = Relationship(
            user_id=user, preferences={"pet": "cat"}
        )
        tables.warns[table_keys.WarnKey(guild, d, user).encode()] = WarnRecord(count=1)
        tables.levels[table_keys.LevelKey(guild, d, user).encode()] = LevelEntry(xp=10)
        tables.game_records[table_keys.GameRecordKey(guild, d, user).encode()] = GameRecord(wins=1)
        tables.automod[table_keys.AutomodKey(guild, d, CHANNEL, user).encode()] = AutomodWindow(
            entries=[WindowEntry(message_id="600000000000000000", at=AT, fingerprint="f")]
        )
        tables.wallets[table_keys.WalletKey(guild, user).encode()] = Wallet(balance=30)
    board = Leaderboard(entries=[LeaderboardEntry(user_id=u, score=5) for u in (ERASED, OTHER)])
    tables.leaderboards[table_keys.LeaderboardKey(guild, d).encode()] = board
    tables.game_boards[table_keys.GameBoardKey(guild, d).encode()] = board
    tables.tracked[table_keys.TrackedKey(guild, d).encode()] = TrackedUsers(users=[ERASED, OTHER])
    tables.economy[table_keys.EconomyKey(guild).encode()] = Wallets(
        balances={ERASED: 50, OTHER: 70, BOT: 5}, last_daily={ERASED: date(2026, 12, 1)}
    )
    tables.directory[table_keys.DirectoryKey(guild).encode()] = GuildDirectory(
        guild_id=guild, voice_channel_of={ERASED: CHANNEL, OTHER: CHANNEL}
    )
    tables.utility[table_keys.UtilityKey(guild).encode()] = UtilityBook(
        reminders=[
            Reminder(
                reminder_id=f"r-{user}",
                deployment_id=d,
                bot_id=BOT,
                guild_id=guild,
                channel_id=CHANNEL,
                user_id=user,
                due_at=AT,
                text="water the plants",
            )
            for user in (ERASED, OTHER)
        ]
    )
    tables.games[table_keys.GamesKey(guild).encode()] = GameBook(
        challenges=[
            RpsChallenge(
                game_id="g1",
                deployment_id=d,
                bot_id=BOT,
                guild_id=guild,
                channel_id=CHANNEL,
                expires_at=AT,
                challenger_id=ERASED,
                opponent_id=OTHER,
                challenger_move="rock",
            )
        ]
    )
    tables.hosted_events[table_keys.HostedEventsKey(guild).encode()] = EventBook(
        runs=[
            EventRun(
                deployment_id=d,
                event="quiz",
                local_day=date(2026, 12, 1),
                interested=[ERASED, OTHER],
                trivia=TriviaRound(
                    questions=[TriviaAsk(question="2+2?", answers=["4"], winner=ERASED)],
                    scores={ERASED: 1, OTHER: 2},
                ),
            )
        ],
        points={ERASED: 1, OTHER: 2},
    )


def _empty_tables() -> Tables:
    return Tables(**{name: {} for name in [*TABLE_MODELS, *RING_TABLES]})


def _dump(tables: Tables, guild: str) -> str:
    """Every entry of the guild, keys and values, as one JSON text."""
    held: dict[str, Any] = {}
    for name, table in named_tables(tables):
        for key, value in table.items():
            if key.split(table_keys.SEPARATOR, 1)[0] == guild:
                held[f"{name}:{key}"] = value.model_dump(mode="json")
    return orjson.dumps(held).decode()


def test_erasing_removes_the_user_from_every_table_and_keeps_the_others() -> None:
    guild, _ = _guilds_on_two_partitions()
    tables = _empty_tables()
    _plant(tables, guild)
    assert ERASED in _dump(tables, guild)

    changed = erase_user(tables, ERASED, lambda _key: True)

    dumped = _dump(tables, guild)
    assert ERASED not in dumped
    assert "Biscuit" not in dumped
    assert changed == 15  # 6 entries keyed by the user deleted, 9 values rewritten
    # The other user keeps everything of theirs.
    assert dumped.count(OTHER) >= 15
    assert "other user's own words" in dumped and "it rains" in dumped
    assert tables.economy[table_keys.EconomyKey(guild).encode()].balances == {OTHER: 70, BOT: 5}
    assert table_keys.WalletKey(guild, OTHER).encode() in tables.wallets
    assert tables.games[table_keys.GamesKey(guild).encode()].challenges == []


def test_erasing_again_changes_nothing() -> None:
    guild, _ = _guilds_on_two_partitions()
    tables = _empty_tables()
    _plant(tables, guild)
    erase_user(tables, ERASED, lambda _key: True)
    before = _dump(tables, guild)
    assert erase_user(tables, ERASED, lambda _key: True) == 0
    assert _dump(tables, guild) == before


def test_only_the_partition_being_erased_is_touched() -> None:
    erased_here, elsewhere = _guilds_on_two_partitions()
    tables = _empty_tables()
    _plant(tables, erased_here)
    _plant(tables, elsewhere)

    erase_user(tables, ERASED, on_partition(partition_of(erased_here)))

    assert ERASED not in _dump(tables, erased_here)
    assert ERASED in _dump(tables, elsewhere)


def test_the_export_lists_exactly_the_entries_holding_the_user() -> None:
    guild, _ = _guilds_on_two_partitions()
    tables = _empty_tables()
    _plant(tables, guild)
    items = ((name, key, value) for name, table in named_tables(tables) for key, value in table.items())

    held = held_about(items, ERASED)

    assert set(held) == {
        "context",
        "relationships",
        "warns",
        "levels",
        "game_records",
        "automod",
        "leaderboards",
        "game_boards",
        "tracked",
        "economy",
        "wallets",
        "directory",
        "utility",
        "games",
        "hosted_events",
    }
    assert "Biscuit" in orjson.dumps(held).decode()
    assert all(OTHER not in key for entries in held.values() for key in entries)


def test_the_users_messages_leave_the_context_rings_slots_too() -> None:
    """A channel's context is a ring of slots: a message taken out of the list, or dropped by the window
    before, stays in its slot until the ring wraps round to it, unless the erasure deletes it."""
    guild, _ = _guilds_on_two_partitions()
    slots: dict[str, Any] = {}
    tables = dataclasses.replace(_empty_tables(), context=CONTEXT_RING.over({}, slots))
    key = table_keys.ContextKey(guild, CHANNEL).encode()
    said = [_message(1, ERASED, "my cat is called Biscuit"), _message(2, OTHER, "it rains")]
    tables.context[key] = ChannelContext(channel_id=CHANNEL, messages=said)
    # The window moves on: the user's message is no longer in the list, but still in its slot.
    tables.context[key] = ChannelContext(channel_id=CHANNEL, messages=[*said[1:], _message(3, OTHER, "so?")])
    assert "Biscuit" in orjson.dumps([s.model_dump(mode="json") for s in slots.values()]).decode()

    assert erase_user(tables, ERASED, lambda _key: True) == 1
    assert "Biscuit" not in orjson.dumps([s.model_dump(mode="json") for s in slots.values()]).decode()
    assert [m.content for m in tables.context[key].messages] == ["it rains", "so?"]
    assert erase_user(tables, ERASED, lambda _key: True) == 0
