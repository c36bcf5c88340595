"""Erasing one user from the processors' tables: the one place that knows where each table holds a user.

`without_user(table, key, value, user_id)` is the value with the user gone: the same object when the value
holds nothing of them, None when the whole entry is theirs (the key names them), else a new value (values
are replaced, never changed in place, so the change reaches the changelog). Context messages go when the
user wrote them or their text names the user's id (a mention); a reply to them keeps its text without the id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import fields
from typing import Any, Protocol

from pydantic import BaseModel

from models import table_keys
from models.erasure import names_user
from models.processor_state import (
    AnnouncementBook,
    EventBook,
    EventRun,
    FloorState,
    GameBook,
    GuildDirectory,
    Leaderboard,
    TrackedUsers,
    UtilityBook,
    Wallets,
)
from models.state import ChannelContext, ContextMessage
from processors.engine import Tables
from processors.ring import ListRing
from processors.table_catalog import partition_of


# Tables whose key ends with a user id: the whole entry is the user's.
class _UserKey(Protocol):
    @property
    def user_id(self) -> str: ...


_KEYED_BY_USER: dict[str, Callable[[str], _UserKey]] = {
    key.TABLE: key.parse
    for key in (
        table_keys.RelationshipKey,
        table_keys.WarnKey,
        table_keys.LevelKey,
        table_keys.GameRecordKey,
        table_keys.AutomodKey,
        table_keys.WalletKey,
    )
}


def _context(value: ChannelContext, user_id: str) -> ChannelContext:
    kept = [
        message
        if message.reply_to_author_id != user_id
        else message.model_copy(update={"reply_to_author_id": None})
        for message in value.messages
        if not _by_or_about(message, user_id)
    ]
    return value if kept == value.messages else value.model_copy(update={"messages": kept})


def _by_or_about(message: ContextMessage, user_id: str) -> bool:
    return message.author_id == user_id or names_user(message.content, user_id)


def _board(value: Leaderboard, user_id: str) -> Leaderboard:
    entries = [entry for entry in value.entries if entry.user_id != user_id]
    return value if len(entries) == len(value.entries) else value.model_copy(update={"entries": entries})


def _without_keys(value: BaseModel, user_id: str, *names: str) -> BaseModel:
    """`value` with `user_id` removed from its dict fields `names`."""
    maps: dict[str, dict[str, Any]] = {name: getattr(value, name) for name in names}
    if not any(user_id in held for held in maps.values()):
        return value
    return value.model_copy(
        update={name: {k: v for k, v in held.items() if k != user_id} for name, held in maps.items()}
    )


def _tracked(value: TrackedUsers, user_id: str) -> BaseModel:
    if user_id not in value.users:
        return value
    return value.model_copy(update={"users": [user for user in value.users if user != user_id]})


def _economy(value: Wallets, user_id: str) -> BaseModel:
    return _without_keys(value, user_id, "balances", "last_daily")


def _directory(value: GuildDirectory, user_id: str) -> BaseModel:
    return _without_keys(value, user_id, "voice_channel_of")


def _utility(value: UtilityBook, user_id: str) -> UtilityBook:
    kept = [reminder for reminder in value.reminders if reminder.user_id != user_id]
    return value if len(kept) == len(value.reminders) else value.model_copy(update={"reminders": kept})


def _games(value: GameBook, user_id: str) -> GameBook:
    kept = [c for c in value.challenges if user_id not in (c.challenger_id, c.opponent_id)]
    return value if len(kept) == len(value.challenges) else value.model_copy(update={"challenges": kept})


def _announcements(value: AnnouncementBook, user_id: str) -> AnnouncementBook:
    kept = [a for a in value.scheduled if a.user_id != user_id]
    return value if len(kept) == len(value.scheduled) else value.model_copy(update={"scheduled": kept})


def _floor(value: FloorState, user_id: str) -> FloorState:
    kept = [r for r in value.rulings if all(d.author_id != user_id for d in r.decisions)]
    return value if len(kept) == len(value.rulings) else value.model_copy(update={"rulings": kept})


def _run(run: EventRun, user_id: str) -> EventRun:
    interested = [member for member in run.interested if member != user_id]
    trivia = run.trivia
    if trivia is not None and (
        user_id in trivia.scores or any(q.winner == user_id for q in trivia.questions)
    ):
        questions = [
            q.model_copy(update={"winner": None}) if q.winner == user_id else q for q in trivia.questions
        ]
        scores = {member: points for member, points in trivia.scores.items() if member != user_id}
        trivia = trivia.model_copy(update={"questions": questions, "scores": scores})
    if len(interested) == len(run.interested) and trivia is run.trivia:
        return run
    return run.model_copy(update={"interested": interested, "trivia": trivia})


def _hosted_events(value: EventBook, user_id: str) -> BaseModel:
    runs = [_run(run, user_id) for run in value.runs]
    if any(new is not old for new, old in zip(runs, value.runs, strict=True)):
        value = value.model_copy(update={"runs": runs})
    return _without_keys(value, user_id, "points")


_ERASERS: dict[str, Callable[[Any, str], BaseModel]] = {
    # The rings are named by their field of `Tables` (their values are whole lists, read back from slots).
    "context": _context,
    table_keys.LeaderboardKey.TABLE: _board,
    table_keys.GameBoardKey.TABLE: _board,
    table_keys.TrackedKey.TABLE: _tracked,
    table_keys.EconomyKey.TABLE: _economy,
    table_keys.DirectoryKey.TABLE: _directory,
    table_keys.UtilityKey.TABLE: _utility,
    table_keys.GamesKey.TABLE: _games,
    table_keys.AnnouncementKey.TABLE: _announcements,
    "floor": _floor,
    table_keys.HostedEventsKey.TABLE: _hosted_events,
}


def without_user(table: str, key: str, value: BaseModel, user_id: str) -> BaseModel | None:
    """`value` without the user: itself when it holds nothing of them, None when the entry is theirs."""
    keyed = _KEYED_BY_USER.get(table)
    if keyed is not None:
        return None if keyed(key).user_id == user_id else value
    eraser = _ERASERS.get(table)
    return value if eraser is None else eraser(value, user_id)


def named_tables(tables: Tables) -> Iterator[tuple[str, MutableMapping[str, Any]]]:
    """Every table with its name (the dataclass field is the table's name)."""
    for field in fields(tables):
        yield field.name, getattr(tables, field.name)


def on_partition(partition: int) -> Callable[[str], bool]:
    """Whether a partition key's entries are on `partition` (for `erase_user`)."""
    return lambda partition_key: partition_of(partition_key) == partition


def erase_user(tables: Tables, user_id: str, owns: Callable[[str], bool]) -> int:
    """Remove the user from every entry whose partition key `owns` accepts (the partition being erased);
    returns how many entries were removed or rewritten."""
    changed = 0
    for name, table in named_tables(tables):
        for key, value in list(table.items()):
            if not owns(key.split(table_keys.SEPARATOR, 1)[0]):
                continue
            erased = without_user(name, key, value, user_id)
            if erased is None:
                del table[key]
            elif erased is not value:
                table[key] = erased
            if erased is not value:
                changed += 1
            if erased is not None and isinstance(table, ListRing):
                # Items no longer in the list (the user's, taken out here, or dropped by the window earlier)
                # stay in their slots until the ring wraps round to them.
                changed += table.drop_stale_slots(key)
    return changed


def held_about(tables_items: Iterator[tuple[str, str, BaseModel]], user_id: str) -> dict[str, dict[str, Any]]:
    """The entries that hold something of the user, by table and key, as JSON (the access export)."""
    found: dict[str, dict[str, Any]] = {}
    for table, key, value in tables_items:
        if without_user(table, key, value, user_id) is not value:
            found.setdefault(table, {})[key] = value.model_dump(mode="json")
    return found
