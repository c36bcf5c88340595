"""Story arcs whose beats wait for conditions: the pure progress (messages, a keyword, the previous beat's
days), validation naming the field, and the engine keeping the progress as table state, announcing a beat
a message started and putting its situation in the prompt."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from models.agent import AgentConfig, RoutineSchedule, StoryArc
from models.common import error_paths
from models.processor_state import ArcProgress
from processors.arcs import advanced, beat_announcement, counted, current_situation
from processors.engine import Engine, Tables
from tests.processors.factories import (
    deployed,
    envelope,
    guild_create,
    luna,
    message_data,
    routing,
    snowflake,
    user,
)

UTC_SCHEDULE = RoutineSchedule()
START = date(2026, 1, 10)


def at(day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime.combine(START + timedelta(days=day), time(hour, minute), tzinfo=UTC)


def arc(*beats: dict[str, Any], **fields_: Any) -> StoryArc:
    return StoryArc.model_validate(
        {"name": "baking", "starts_on": START.isoformat(), "beats": beats, **fields_}
    )


BAKING = arc(
    {"days": 2, "situation": "You bought flour.", "announcement": "Flour!"},
    {"days": 1, "situation": "People asked about cake.", "starts_when": {"messages": 3}},
    {
        "days": 1,
        "situation": "You baked a cake.",
        "announcement": "Cake!",
        "starts_when": {"keyword": "cake"},
    },
    {"days": 2, "situation": "You rest."},
)


def talk(progress: ArcProgress | None, text: str, when: datetime) -> ArcProgress | None:
    return counted(BAKING, progress, text, when, UTC_SCHEDULE) or progress


def test_nothing_before_the_start_then_the_first_beat_on_its_date() -> None:
    assert advanced(BAKING, None, at(-1), UTC_SCHEDULE) is None
    first = advanced(BAKING, None, at(0), UTC_SCHEDULE)
    assert first is not None and first.beat == 0 and first.began_at == at(0, 0)
    assert current_situation(BAKING, first, START) == "You bought flour."


def test_a_messages_condition_waits_for_the_count_and_the_previous_beats_days() -> None:
    progress = None
    for minute in range(3):  # three messages on day 0: counted, but the first beat lasts two days
        progress = talk(progress, "hello", at(0, 13, minute))
    assert progress is not None and (progress.beat, progress.messages) == (0, 3)
    assert advanced(BAKING, progress, at(1, 23), UTC_SCHEDULE) == progress
    # Met before its time: the beat begins at the midnight the first beat ran its days, whenever the timer
    # looks, so a late timer and a replay agree.
    begun = advanced(BAKING, progress, at(2, 9), UTC_SCHEDULE)
    assert begun is not None and (begun.beat, begun.began_at, begun.messages) == (1, at(2, 0), 0)
    assert advanced(BAKING, progress, at(2, 18), UTC_SCHEDULE) == begun


def test_a_keyword_starts_the_beat_with_the_message_that_says_it() -> None:
    progress = advanced(
        BAKING, talk(talk(talk(None, "a", at(0)), "b", at(0, 13)), "c", at(0, 14)), at(2), UTC_SCHEDULE
    )
    assert progress is not None and progress.beat == 1
    progress = talk(progress, "I like pancakes", at(3, 10))  # "cake" inside a word is not the word
    assert progress is not None and progress.beat == 1 and not progress.heard
    started = talk(progress, "Did you bake a Cake yet?", at(3, 15))
    assert started is not None and (started.beat, started.began_on, started.began_at) == (
        2,
        START + timedelta(3),
        at(3, 15),
    )
    # The last beat follows by date; the arc ends when it has run its days.
    rested = advanced(BAKING, started, at(4, 1), UTC_SCHEDULE)
    assert rested is not None and rested.beat == 3
    assert current_situation(BAKING, rested, START + timedelta(5)) == "You rest."
    assert current_situation(BAKING, rested, START + timedelta(6)) is None


def test_a_redelivered_or_older_message_is_not_counted_again() -> None:
    once = talk(None, "hello", at(0, 13))
    assert counted(BAKING, once, "hello", at(0, 13), UTC_SCHEDULE) is None
    assert counted(BAKING, once, "hello", at(0, 12), UTC_SCHEDULE) is None
    assert once is not None and once.messages == 1


def test_a_beat_a_message_started_is_announced_at_once_or_at_the_post_time() -> None:
    late = ArcProgress(beat=2, began_on=START + timedelta(3), began_at=at(3, 15))
    firing = beat_announcement(BAKING, late, UTC_SCHEDULE)
    assert firing is not None and (firing.routine, firing.at, firing.text) == (
        "arc:baking:2",
        at(3, 15),
        "Cake!",
    )
    early = ArcProgress(beat=2, began_on=START + timedelta(3), began_at=at(3, 8))
    assert beat_announcement(BAKING, early, UTC_SCHEDULE).at == at(3, 12)  # type: ignore[union-attr]
    silent = ArcProgress(beat=1, began_on=START + timedelta(2), began_at=at(2, 0))
    assert beat_announcement(BAKING, silent, UTC_SCHEDULE) is None
    quiet = RoutineSchedule(quiet_hours={"start": "14:00", "end": "16:00"})
    assert beat_announcement(BAKING, late, quiet) is None


@pytest.mark.parametrize(
    ("beats", "path"),
    [
        ([{"days": 1, "situation": "s", "starts_when": {"messages": 2}}], "beats.0.starts_when"),
        (
            [{"days": 1, "situation": "s"}, {"days": 1, "situation": "t", "starts_when": {}}],
            "beats.1.starts_when.messages",
        ),
        (
            [
                {"days": 1, "situation": "s"},
                {"days": 1, "situation": "t", "starts_when": {"messages": 2, "keyword": "x"}},
            ],
            "beats.1.starts_when.messages",
        ),
        (
            [{"days": 1, "situation": "s"}, {"days": 1, "situation": "t", "starts_when": {"messages": 0}}],
            "beats.1.starts_when.messages",
        ),
        (
            [{"days": 1, "situation": "s"}, {"days": 1, "situation": "t", "starts_when": {"keyword": " "}}],
            "beats.1.starts_when.keyword",
        ),
    ],
)
def test_conditions_are_validated_naming_the_field(beats: list[dict[str, Any]], path: str) -> None:
    with pytest.raises(ValidationError) as caught:
        StoryArc.model_validate({"name": "a", "starts_on": "2026-01-01", "beats": beats})
    assert any(p.startswith(path) for p in error_paths(caught.value)), error_paths(caught.value)


# Through the engine ------------------------------------------------------------------------------------

GUILD, GENERAL, OTHER, BOT = snowflake(), snowflake(), snowflake(), snowflake()
KAI = user(snowflake(), "kai")


def setup() -> Engine:
    data = luna().model_dump(mode="json")
    data["behavior"].update(
        {
            "schedule": {"time_zone": "UTC"},
            "proactive_actions": {},
            "story_arcs": [BAKING.model_dump(mode="json")],
        }
    )
    companion = deployed(
        AgentConfig.model_validate(data),
        guild_id=GUILD,
        bot_id=BOT,
        text_channels=[GENERAL],
        deployed_at=at(-5),
    )
    engine = Engine(Tables(*({} for _ in fields(Tables))))
    assert engine.apply_routing(routing(GUILD, companion))
    created = guild_create(GUILD, owner_id=snowflake(), channels={GENERAL: "general", OTHER: "other"})
    engine.handle_event(envelope("GUILD_CREATE", created, bot_id=BOT, guild_id=GUILD))
    return engine


def say(
    engine: Engine, text: str, when: datetime, channel: str = GENERAL, mention: bool = False
) -> list[Any]:
    content = f"<@{BOT}> {text}" if mention else text
    mentions = [user(BOT, "luna", True)] if mention else []
    data = message_data(
        guild_id=GUILD, channel_id=channel, author=KAI, content=content, at=when, mentions=mentions
    )
    event = envelope("MESSAGE_CREATE", data, bot_id=BOT, guild_id=GUILD, channel_id=channel, at=when)
    engine.handle_event(event)
    return engine.handle_event(event).requests  # a redelivery changes nothing


def test_the_engine_keeps_the_progress_and_announces_the_beat_a_keyword_started() -> None:
    engine = setup()
    [flour] = engine.fire_routines(GUILD, at(0, 12)).decisions  # "Flour!" at noon on the first day
    assert flour.routine == "arc:baking:0" and not flour.respond  # nobody spoke in the channel yet
    for minute in range(3):
        say(engine, "hi", at(1, 10, minute))
    say(engine, "hi", at(1, 11), channel=OTHER)  # another channel does not count
    assert not engine.fire_routines(GUILD, at(2, 0, 1)).decisions  # beat 1 begins silently
    [asked] = say(engine, "so, any cake yet?", at(3, 15), mention=True)
    # The message that starts the beat is answered already knowing it.
    assert "You baked a cake." in asked.messages[0].content
    fired = engine.fire_routines(GUILD, at(3, 15, 1))
    [cake] = fired.decisions
    assert cake.routine == "arc:baking:2" and cake.respond
    [request] = fired.requests
    assert "Cake!" in request.messages[-1].content and "You baked a cake." in request.messages[0].content
    assert not engine.fire_routines(GUILD, at(3, 16)).decisions
