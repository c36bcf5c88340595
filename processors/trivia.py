"""Trivia, as pure functions of (round, event, configuration): drawing a round, judging an answer, the timer's
step from one question to the next, and the leaderboard.

A round asks its questions one at a time. The first message in the channel that matches an accepted answer
(normalised: case, accents, punctuation, spacing and a leading article do not count) wins the point and
closes the question; nobody right within the timeout closes it with the answer revealed. The timer asks the
next question on its next tick, so every question's time is the timer's clock. Each message is judged once:
a redelivered answer, or the copy another bot of the guild delivers, scores nothing more.
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from datetime import datetime, timedelta
from functools import cache
from importlib import resources

from pydantic import TypeAdapter

from models.agent import TriviaConfig, TriviaQuestion, TriviaSource
from models.processor_state import (
    LEADERBOARD_SIZE,
    TRIVIA_JUDGED,
    TRIVIA_PLAYERS_KEPT,
    TriviaAsk,
    TriviaRound,
)
from processors.emit import Say

_ARTICLE = re.compile(r"^(?:the|a|an) ")
_NOT_WORD = re.compile(r"[^\w\s]")
_SPACES = re.compile(r"\s+")


@cache
def bundled_questions() -> tuple[TriviaQuestion, ...]:
    """The question set shipped with the platform (processors/trivia_questions.json)."""
    raw = resources.files("processors").joinpath("trivia_questions.json").read_text(encoding="utf-8")
    return tuple(TypeAdapter(list[TriviaQuestion]).validate_python(json.loads(raw)))


def normalise(text: str) -> str:
    """An answer as compared: lower case, accents, punctuation and a leading article removed."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(char for char in decomposed if not unicodedata.combining(char))
    words = _SPACES.sub(" ", _NOT_WORD.sub(" ", bare)).strip()
    return _ARTICLE.sub("", words)


def is_right(ask: TriviaAsk, text: str) -> bool:
    said = normalise(text)
    return bool(said) and any(said == normalise(answer) for answer in ask.answers)


def draw_round(config: TriviaConfig, rng: random.Random) -> TriviaRound:
    """`question_count` questions of the source, in a random order (fewer if the bundled set is smaller)."""
    pool = list(config.questions if config.source is TriviaSource.owner else bundled_questions())
    picked = rng.sample(pool, min(config.question_count, len(pool)))
    return TriviaRound(questions=[TriviaAsk(question=q.question, answers=q.answers) for q in picked])


def _with_ask(round_: TriviaRound, ask: TriviaAsk, **changes: object) -> TriviaRound:
    questions = list(round_.questions)
    questions[round_.current] = ask
    return round_.model_copy(update={"questions": questions, **changes})


def judge(
    round_: TriviaRound, message_id: str, user_id: str, text: str
) -> tuple[TriviaRound | None, Say | None]:
    """A message while a question is open: the new round (None: unchanged) and what the host says (a right
    answer is congratulated; a wrong one is only remembered as judged)."""
    if round_.over or message_id in round_.judged:
        return None, None
    ask = round_.questions[round_.current]
    if ask.asked_at is None or ask.closed:
        return None, None
    judged = [*round_.judged, message_id][-TRIVIA_JUDGED:]
    if not is_right(ask, text):
        return round_.model_copy(update={"judged": judged}), None
    points = round_.scores.get(user_id, 0) + 1
    scores = {**round_.scores, user_id: points}
    won = ask.model_copy(update={"winner": user_id, "closed": True})
    say = Say(f"<@{user_id}> got it: **{ask.answers[0]}**! ({_points(points)})", title="Trivia")
    return _with_ask(round_, won, judged=judged, scores=scores), say


def step(round_: TriviaRound, now: datetime, timeout_s: int) -> tuple[TriviaRound, list[Say]]:
    """The timer's tick: a question nobody answered in time is revealed, a closed one makes way for the
    next, which is asked now."""
    says: list[Say] = []
    while not round_.over:
        ask = round_.questions[round_.current]
        if ask.asked_at is None:
            number = f"{round_.current + 1}/{len(round_.questions)}"
            says.append(Say(f"**Question {number}:** {ask.question}", title="Trivia"))
            return _with_ask(round_, ask.model_copy(update={"asked_at": now})), says
        if not ask.closed:
            if now < ask.asked_at + timedelta(seconds=timeout_s):
                break
            says.append(Say(f"Time's up! The answer was **{ask.answers[0]}**.", title="Trivia"))
            round_ = _with_ask(round_, ask.model_copy(update={"closed": True}))
        round_ = round_.model_copy(update={"current": round_.current + 1})
    return round_, says


def standings(points: dict[str, int]) -> list[tuple[str, int]]:
    """(user id, points), most points first; a tie goes to who scored first."""
    order = {user_id: index for index, user_id in enumerate(points)}
    return sorted(points.items(), key=lambda item: (-item[1], order[item[0]]))


def leaderboard(round_: TriviaRound, title: str) -> Say:
    ranked = standings(round_.scores)
    if not ranked:
        return Say(f"{title} is over. Nobody scored this time!", title="Trivia results")
    return Say(f"{title} is over! Final scores:\n" + _lines(ranked), title="Trivia results")


def credit(points: dict[str, int], round_: TriviaRound) -> dict[str, int]:
    """The guild's standing points with a finished round's added: the best TRIVIA_PLAYERS_KEPT, best first."""
    added = {**points, **{user_id: points.get(user_id, 0) + won for user_id, won in round_.scores.items()}}
    return dict(standings(added)[:TRIVIA_PLAYERS_KEPT])


def trivia_board(points: dict[str, int]) -> Say:
    """`/trivia`: the guild's trivia points, most first (a tie goes to who scored first)."""
    ranked = standings(points)[:LEADERBOARD_SIZE]
    if not ranked:
        return Say("Nobody has won a trivia point yet.", title="Trivia leaderboard")
    return Say(_lines(ranked), title="Trivia leaderboard")


def _lines(ranked: list[tuple[str, int]]) -> str:
    return "\n".join(
        f"{place}. <@{user_id}> · {_points(won)}" for place, (user_id, won) in enumerate(ranked, 1)
    )


def _points(points: int) -> str:
    return f"{points} point{'s' if points != 1 else ''}"
