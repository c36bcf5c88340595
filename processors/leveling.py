"""Leveling: XP per message with a cooldown, MEE6's level curve, /rank and /leaderboard."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta

from models.agent import LevelingConfig
from models.processor_state import LEADERBOARD_SIZE, Leaderboard, LeaderboardEntry, LevelEntry
from processors.commands import Invocation
from processors.emit import Say


def xp_to_next(level: int) -> int:
    """XP from `level` to the next one: 5n² + 50n + 100."""
    return 5 * level * level + 50 * level + 100


def progress(xp: int) -> tuple[int, int, int]:
    """(level, XP into that level, XP the level needs)."""
    level = 0
    while xp >= xp_to_next(level):
        xp -= xp_to_next(level)
        level += 1
    return level, xp, xp_to_next(level)


def award_xp(
    entry: LevelEntry | None, config: LevelingConfig, dice: Callable[[], random.Random], at: datetime
) -> LevelEntry | None:
    """The entry after one message, or None inside the cooldown (which also absorbs a redelivered event).
    `dice` makes the generator, called only outside the cooldown: seeding one costs more than the rest of
    the check, and most messages of an active member fall inside it."""
    current = entry or LevelEntry()
    last = current.last_xp_at
    if last is not None and (at <= last or at - last < timedelta(seconds=config.cooldown_s)):
        return None
    xp = current.xp + dice().randint(config.xp_min, config.xp_max)
    return LevelEntry(xp=xp, level=progress(xp)[0], last_xp_at=at)


def update_leaderboard(board: Leaderboard | None, user_id: str, score: int) -> Leaderboard | None:
    """The top list with the user's new score, or None when the user does not make it."""
    entries = [e for e in (board.entries if board is not None else []) if e.user_id != user_id]
    full = len(entries) >= LEADERBOARD_SIZE
    if full and score <= min(e.score for e in entries):
        return None
    entries.append(LeaderboardEntry(user_id=user_id, score=score))
    entries.sort(key=lambda e: (-e.score, e.user_id))
    return Leaderboard(entries=entries[:LEADERBOARD_SIZE])


def rank_of(board: Leaderboard | None, user_id: str) -> int | None:
    entries = board.entries if board is not None else []
    return next((position for position, e in enumerate(entries, start=1) if e.user_id == user_id), None)


def handle_leveling(
    invocation: Invocation, target_entry: LevelEntry | None, board: Leaderboard | None
) -> Say:
    if invocation.name == "leaderboard":
        entries = board.entries if board is not None else []
        if not entries:
            return Say("Nobody has earned XP yet.", title="Leaderboard")
        lines = [
            f"{position}. <@{e.user_id}> — level {progress(e.score)[0]} ({e.score} XP)"
            for position, e in enumerate(entries, start=1)
        ]
        return Say("\n".join(lines), title="Leaderboard")
    if invocation.name == "rank":
        target = invocation.text("user") or invocation.user.id
        xp = target_entry.xp if target_entry is not None else 0
        level, into, needed = progress(xp)
        position = rank_of(board, target)
        place = f" · #{position}" if position is not None else ""
        return Say(
            f"<@{target}> — level {level} · {into}/{needed} XP to level {level + 1}{place}", title="Rank"
        )
    raise ValueError(f"not a leveling command: {invocation.name}")
