"""Native polls as Discord documents them: the poll object a message is created with, votes, and the
results once the poll ends."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from . import errors
from .world import Json

MAX_QUESTION = 300
MAX_ANSWERS = 10
MAX_ANSWER = 55
MAX_DURATION_H = 768  # 32 days


def _text(value: Any, field: str, limit: int) -> str:
    text = value.get("text") if isinstance(value, dict) else None
    if not isinstance(text, str) or not 1 <= len(text) <= limit:
        raise errors.invalid_form(field, f"Must be between 1 and {limit} in length.")
    return text


def poll_payload(body: Any, now: datetime) -> Json:
    """The poll of a created message, from the poll create request; raises the field's Invalid Form Body."""
    if not isinstance(body, dict):
        raise errors.invalid_form("poll", "Must be an object.")
    question = _text(body.get("question"), "poll.question.text", MAX_QUESTION)
    answers = body.get("answers")
    if not isinstance(answers, list) or not 1 <= len(answers) <= MAX_ANSWERS:
        raise errors.invalid_form("poll.answers", f"Must be between 1 and {MAX_ANSWERS} in length.")
    texts = [
        _text(
            a.get("poll_media") if isinstance(a, dict) else None,
            f"poll.answers.{i}.poll_media.text",
            MAX_ANSWER,
        )
        for i, a in enumerate(answers)
    ]
    duration = body.get("duration", 24)
    if not isinstance(duration, int) or isinstance(duration, bool) or not 1 <= duration <= MAX_DURATION_H:
        raise errors.invalid_form("poll.duration", f"Must be between 1 and {MAX_DURATION_H}.")
    return {
        "question": {"text": question},
        "answers": [{"answer_id": i, "poll_media": {"text": t}} for i, t in enumerate(texts, 1)],
        "expiry": (now + timedelta(hours=duration)).isoformat(),
        "allow_multiselect": bool(body.get("allow_multiselect", False)),
        "layout_type": 1,
        "results": {"is_finalized": False, "answer_counts": []},
    }


def results(poll: Json, votes: dict[int, dict[str, None]], *, finalized: bool) -> Json:
    return {
        "is_finalized": finalized,
        "answer_counts": [
            {"id": answer["answer_id"], "count": len(votes.get(answer["answer_id"], {})), "me_voted": False}
            for answer in poll["answers"]
        ],
    }
