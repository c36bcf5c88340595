"""Hosted events and trivia: the owner's configuration, the occurrences' times, judging and the round's steps,
and a whole trivia night through the engine (scheduled, reminded, started, asked, answered, ended)."""

from __future__ import annotations

import random
from copy import deepcopy
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from models.actions import (
    CreateScheduledEvent,
    InteractionResponse,
    ScheduledEventStatus,
    SendMessage,
    SetScheduledEventStatus,
)
from models.agent import AgentConfig, AgentMode, HostedEvent, TriviaConfig
from models.common import error_paths
from models.processor_state import TRIVIA_PLAYERS_KEPT, EventRun, EventStep, TriviaAsk, TriviaRound
from models.table_keys import HostedEventsKey
from processors.engine import Engine, Tables
from processors.events import due_step, host_events, occurrence_on
from processors.trivia import (
    bundled_questions,
    credit,
    draw_round,
    is_right,
    judge,
    leaderboard,
    normalise,
    step,
    trivia_board,
)
from tests.processors.factories import (
    Where,
    agent_with,
    deployed,
    envelope,
    guild_create,
    message_event,
    routing,
    slash_event,
    snowflake,
    user,
)

FRIDAY = date(2026, 1, 16)  # Berlin is UTC+1 in winter: 20:00 local is 19:00 UTC
START = datetime(2026, 1, 16, 19, 0, tzinfo=UTC)
QUESTIONS = [
    {"question": "Capital of Japan?", "answers": ["Tokyo"]},
    {"question": "Who wrote Faust?", "answers": ["Goethe", "Johann Wolfgang von Goethe"]},
    {"question": "Largest planet?", "answers": ["Jupiter"]},
]


def trivia_night(**changes: Any) -> dict[str, Any]:
    return {
        "kind": "trivia",
        "title": "Trivia night",
        "description": "Questions on everything",
        "weekday": "friday",
        "time": "20:00",
        "duration_minutes": 60,
        "remind_minutes": 30,
        "channel": "#general",
        "voice_channel": "#lounge",
        "trivia": {"source": "owner", "questions": QUESTIONS, "question_count": 2, "answer_timeout_s": 30},
        **changes,
    }


def host_agent(**event: Any) -> AgentConfig:
    return agent_with(
        AgentMode.bare,
        enabled_tools=["games"],
        enabled_commands=["trivia"],
        behavior={
            "schedule": {"time_zone": "Europe/Berlin"},
            "hosted_events": {"trivia": trivia_night(**event)},
        },
    )


# Configuration ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"on_date": "2026-01-16"}, "weekday"),
        ({"weekday": None}, "weekday"),
        ({"location": "the park"}, "location"),
        ({"voice_channel": ""}, "location"),
        ({"kind": "movie_night"}, "trivia"),
        ({"remind_minutes": 24 * 60}, "remind_minutes"),
        ({"title": ""}, "title"),
        ({"time": "25:00"}, "time"),
        (
            {"trivia": {"source": "owner", "questions": QUESTIONS[:1], "question_count": 2}},
            "trivia.questions",
        ),
        ({"trivia": {"source": "bundled", "questions": QUESTIONS}}, "trivia.questions"),
        ({"trivia": {"answer_timeout_s": 1}}, "trivia.answer_timeout_s"),
    ],
)
def test_a_bad_event_is_refused_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        HostedEvent.model_validate(trivia_night(**changes))
    assert any(path.endswith(field) for path in error_paths(caught.value)), error_paths(caught.value)


def test_a_trivia_event_without_a_round_plays_the_bundled_defaults() -> None:
    event = HostedEvent.model_validate(trivia_night(trivia=None))
    assert event.round == TriviaConfig()
    assert HostedEvent.model_validate(trivia_night(kind="movie_night", trivia=None)).round is None


# Times -----------------------------------------------------------------------------------------------------


def test_an_occurrence_is_on_its_weekday_at_its_local_time() -> None:
    host = deployed(host_agent(), guild_id=snowflake(), bot_id=snowflake())
    event = host.agent.behavior.hosted_events["trivia"]
    assert occurrence_on("trivia", event, host, FRIDAY - timedelta(days=1)) is None
    occurrence = occurrence_on("trivia", event, host, FRIDAY)
    assert occurrence is not None
    assert occurrence.starts_at == START
    assert occurrence.ends_at == START + timedelta(hours=1)
    assert occurrence.announce_at == START - timedelta(hours=24)
    assert occurrence.remind_at == START - timedelta(minutes=30)


def test_steps_come_in_order_and_none_is_done_late() -> None:
    host = deployed(host_agent(), guild_id=snowflake(), bot_id=snowflake())
    occurrence = occurrence_on("trivia", host.agent.behavior.hosted_events["trivia"], host, FRIDAY)
    assert occurrence is not None
    run = EventRun(deployment_id=host.deployment.deployment_id, event="trivia", local_day=FRIDAY)

    def after(*steps: EventStep) -> EventRun:
        return run.model_copy(update={"steps": list(steps)})

    assert due_step(None, occurrence, START - timedelta(hours=25)) is None
    assert due_step(None, occurrence, START - timedelta(hours=24)) is EventStep.created
    # Discord refuses a start in the past: an occurrence first seen after its start is never created.
    assert due_step(None, occurrence, START) is None
    created = after(EventStep.created)
    assert due_step(created, occurrence, START - timedelta(hours=1)) is None
    assert due_step(created, occurrence, START - timedelta(minutes=30)) is EventStep.reminded
    assert due_step(created, occurrence, START) is EventStep.started  # a missed reminder is skipped
    assert due_step(after(EventStep.created, EventStep.reminded), occurrence, START) is EventStep.started
    assert due_step(created, occurrence, START + timedelta(hours=1)) is None  # never started after its end
    started = after(EventStep.created, EventStep.started)
    assert due_step(started, occurrence, START + timedelta(minutes=10)) is None
    assert due_step(started, occurrence, START + timedelta(hours=1)) is EventStep.ended
    over = TriviaRound(questions=[TriviaAsk(question="q", answers=["a"])], current=1)
    assert due_step(started.model_copy(update={"trivia": over}), occurrence, START) is EventStep.ended
    assert due_step(created.model_copy(update={"canceled": True}), occurrence, START) is None


# Trivia ----------------------------------------------------------------------------------------------------


def test_answers_are_compared_normalised() -> None:
    ask = TriviaAsk(question="Who painted it?", answers=["Leonardo da Vinci", "Café Müller"])
    assert normalise("  The  CAFÉ-müller!! ") == "cafe muller"
    assert is_right(ask, "leonardo  da vinci.")
    assert is_right(ask, "the cafe muller")
    assert not is_right(ask, "da vinci")
    assert not is_right(ask, "!!!")


def test_a_round_draws_from_its_source_deterministically() -> None:
    owner = TriviaConfig.model_validate({"source": "owner", "questions": QUESTIONS, "question_count": 2})
    drawn = draw_round(owner, random.Random(1))
    assert drawn == draw_round(owner, random.Random(1))
    assert len(drawn.questions) == 2
    assert {q.question for q in drawn.questions} <= {q["question"] for q in QUESTIONS}
    bundled = draw_round(TriviaConfig(question_count=50), random.Random(1))
    assert len(bundled.questions) == len(bundled_questions()) >= 20


def test_first_right_answer_wins_once_and_a_timeout_reveals() -> None:
    t0 = START
    round_ = TriviaRound(
        questions=[
            TriviaAsk(question="Capital of Japan?", answers=["Tokyo"]),
            TriviaAsk(question="Largest planet?", answers=["Jupiter"]),
        ]
    )
    # Nothing is judged before the question is asked.
    assert judge(round_, "1", "kai", "Tokyo") == (None, None)
    round_, says = step(round_, t0, 30)
    assert [s.text for s in says] == ["**Question 1/2:** Capital of Japan?"]
    wrong, said = judge(round_, "2", "mia", "Kyoto")
    assert wrong is not None and said is None and wrong.scores == {}
    right, said = judge(wrong, "3", "kai", "tokyo!")
    assert right is not None and said is not None and "Tokyo" in said.text
    assert right.scores == {"kai": 1}
    # The same message again, or a later right answer to a closed question, scores nothing.
    assert judge(right, "3", "kai", "tokyo!") == (None, None)
    assert judge(right, "4", "mia", "Tokyo") == (None, None)
    round_, says = step(right, t0 + timedelta(seconds=1), 30)
    assert [s.text for s in says] == ["**Question 2/2:** Largest planet?"]
    round_, says = step(round_, t0 + timedelta(seconds=30), 30)
    assert says == [] and not round_.over
    round_, says = step(round_, t0 + timedelta(seconds=31), 30)
    assert [s.text for s in says] == ["Time's up! The answer was **Jupiter**."]
    assert round_.over
    assert (
        leaderboard(round_, "Trivia night").text == "Trivia night is over! Final scores:\n1. <@kai> · 1 point"
    )


# A trivia night through the engine ---------------------------------------------------------------------


def actions_of(kind: type[Any], outputs: Any) -> list[Any]:
    return [action for action in outputs.actions if isinstance(action, kind)]


@dataclass(frozen=True)
class Guild:
    """A guild with #general and the #lounge voice channel, the host agent deployed there."""

    engine: Engine
    guild: str
    general: str
    lounge: str
    bot: str

    def created_on_discord(self, **changes: Any) -> dict[str, Any]:
        """Discord's GUILD_SCHEDULED_EVENT_CREATE for the event the host created; its data."""
        scheduled = {
            "id": snowflake(),
            "guild_id": self.guild,
            "creator_id": self.bot,
            "name": "Trivia night",
            "scheduled_start_time": START.isoformat(),
            "status": 1,
            "channel_id": self.lounge,
            "entity_type": 2,
            **changes,
        }
        self.dispatch("GUILD_SCHEDULED_EVENT_CREATE", scheduled)
        return scheduled

    def dispatch(self, kind: str, data: dict[str, Any]) -> None:
        assert not self.engine.handle_event(envelope(kind, data, bot_id=self.bot, guild_id=self.guild))


def hosting_guild() -> Guild:
    guild, general, lounge, bot = snowflake(), snowflake(), snowflake(), snowflake()
    engine = Engine(Tables(*({} for _ in fields(Tables))))
    host = deployed(host_agent(), guild_id=guild, bot_id=bot, deployed_at=START - timedelta(days=3))
    engine.deploy(routing(guild, host))
    created = guild_create(guild, owner_id=snowflake(), channels={general: "general", lounge: "lounge"})
    engine.handle_event(envelope("GUILD_CREATE", created, bot_id=bot, guild_id=guild))
    return Guild(engine, guild, general, lounge, bot)


def test_a_trivia_night_from_announcement_to_leaderboard() -> None:
    hosting = hosting_guild()
    engine, guild, general, lounge, bot = (
        hosting.engine,
        hosting.guild,
        hosting.general,
        hosting.lounge,
        hosting.bot,
    )
    kai, mia = user(snowflake(), "kai"), user(snowflake(), "mia")
    where = Where(bot, guild, general)

    assert not engine.fire_events(guild, START - timedelta(hours=25))
    [create] = actions_of(CreateScheduledEvent, engine.fire_events(guild, START - timedelta(hours=24)))
    assert (create.name, create.scheduled_start_time, create.scheduled_end_time) == (
        "Trivia night",
        START,
        START + timedelta(hours=1),
    )
    assert create.voice_channel_id == lounge and create.report is not None
    assert "Trivia night" in create.report.done
    assert not engine.fire_events(guild, START - timedelta(hours=23))  # created once

    scheduled = hosting.created_on_discord()
    for who in (kai, mia):
        joined = {"guild_scheduled_event_id": scheduled["id"], "user_id": who["id"], "guild_id": guild}
        hosting.dispatch("GUILD_SCHEDULED_EVENT_USER_ADD", joined)

    [reminder] = actions_of(SendMessage, engine.fire_events(guild, START - timedelta(minutes=30)))
    assert f"<@{kai['id']}>" in reminder.content and f"<@{mia['id']}>" in reminder.content
    assert reminder.channel_id == general

    started = engine.fire_events(guild, START)
    [active] = actions_of(SetScheduledEventStatus, started)
    assert (active.event_id, active.status) == (scheduled["id"], ScheduledEventStatus.active)
    assert active.report is not None and "2 questions" in active.report.done
    [first] = actions_of(SendMessage, started)
    book = engine.tables.hosted_events[HostedEventsKey(guild).encode()]
    round_ = book.runs[0].trivia
    assert round_ is not None and "Question 1/2" in first.content
    questions = {q.question: q.answers[0] for q in round_.questions}
    answer = questions[round_.questions[0].question]

    assert not engine.handle_event(message_event(where, mia, "no idea", START + timedelta(seconds=2))).actions
    right = message_event(where, kai, answer.lower(), START + timedelta(seconds=3))
    [congrats] = actions_of(SendMessage, engine.handle_event(right))
    assert f"<@{kai['id']}>" in congrats.content
    # The answer redelivered (and the same message through another bot) changes nothing.
    assert not engine.handle_event(right).actions
    assert not engine.handle_event(right.model_copy(update={"event_id": "other-bot"})).actions

    [second] = actions_of(SendMessage, engine.fire_events(guild, START + timedelta(seconds=4)))
    assert "Question 2/2" in second.content
    assert not engine.fire_events(guild, START + timedelta(seconds=20))
    timed_out = engine.fire_events(guild, START + timedelta(seconds=35))
    (reveal,) = actions_of(SendMessage, timed_out)
    assert "Time's up" in reveal.content
    [completed] = actions_of(SetScheduledEventStatus, timed_out)
    assert completed.status is ScheduledEventStatus.completed and completed.report is not None
    assert completed.report.done == f"Trivia night is over! Final scores:\n1. <@{kai['id']}> · 1 point"
    assert not engine.fire_events(guild, START + timedelta(minutes=50))
    assert not engine.fire_events(guild, START + timedelta(hours=2))
    final = engine.tables.hosted_events[HostedEventsKey(guild).encode()].runs[0]
    assert (
        final.steps == list(EventStep) and final.trivia is not None and final.trivia.scores == {kai["id"]: 1}
    )
    [board] = engine.handle_event(slash_event(where, mia, "trivia", at=START + timedelta(hours=2))).actions
    assert isinstance(board, InteractionResponse) and board.content == f"1. <@{kai['id']}> · 1 point"


def test_the_trivia_board_adds_up_the_rounds_once_each() -> None:
    round_ = TriviaRound(questions=[TriviaAsk(question="q", answers=["a"])], scores={"11": 2, "22": 1})
    points = credit(credit({}, round_), round_.model_copy(update={"scores": {"22": 3}}))
    assert points == {"11": 2, "22": 4}
    assert trivia_board(points).text == "1. <@22> · 4 points\n2. <@11> · 2 points"
    assert trivia_board({}).text == "Nobody has won a trivia point yet."
    # A full book keeps the best: a newcomer's two points push out the latest of the one-point players.
    crowd = {str(10 + n): 1 for n in range(TRIVIA_PLAYERS_KEPT)}
    kept = credit(crowd, round_.model_copy(update={"scores": {"5": 2}}))
    assert len(kept) == TRIVIA_PLAYERS_KEPT and kept["5"] == 2 and "10" in kept
    assert str(9 + TRIVIA_PLAYERS_KEPT) not in kept


def test_ticks_skipped_until_the_next_wake_make_what_looking_every_time_makes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The events timer skips a guild until its next step, question timeout or local midnight: ticked from
    two days before a trivia night to after it (every ten minutes, every five seconds around the round),
    with Discord's answers and people's answers in between, it makes exactly the actions, and leaves exactly
    the book, of an engine that looks at everything at every tick, while looking far less often."""
    remembering = hosting_guild()
    looking = Engine(deepcopy(remembering.engine.tables))
    hosted = 0

    def counted(*args: Any) -> Any:
        nonlocal hosted
        hosted += 1
        return host_events(*args)

    kai = user(snowflake(), "kai")
    where = Where(remembering.bot, remembering.guild, remembering.general)
    book_key = HostedEventsKey(remembering.guild).encode()
    made: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
    ticks = 0
    now = START - timedelta(days=2)
    while now < START + timedelta(hours=2):
        fresh = Engine(looking.tables)  # a new engine remembers no wake-up time
        with monkeypatch.context() as patched:
            patched.setattr("processors.engine.host_events", counted)
            ticked = remembering.engine.fire_events(remembering.guild, now).actions
        made[0].extend(action.model_dump(exclude={"created_at"}) for action in ticked)
        made[1].extend(
            action.model_dump(exclude={"created_at"})
            for action in fresh.fire_events(remembering.guild, now).actions
        )
        ticks += 1
        if any(isinstance(action, CreateScheduledEvent) for action in ticked):
            scheduled = remembering.created_on_discord()
            looking.handle_event(
                envelope(
                    "GUILD_SCHEDULED_EVENT_CREATE", scheduled, bot_id=where.bot_id, guild_id=where.guild_id
                )
            )
        book = looking.tables.hosted_events.get(book_key)
        round_ = book.runs[0].trivia if book is not None else None
        if round_ is not None and round_.current == 0 and not round_.questions[0].closed:
            # Kai answers the first question right a second after it is asked; the second one times out.
            right = message_event(where, kai, round_.questions[0].answers[0], now + timedelta(seconds=1))
            for engine in (remembering.engine, looking):
                engine.handle_event(right)
        now += timedelta(seconds=5) if abs(now - START) < timedelta(minutes=2) else timedelta(minutes=10)
    assert made[0] == made[1]
    assert remembering.engine.tables.hosted_events == looking.tables.hosted_events
    assert looking.tables.hosted_events[book_key].points == {kai["id"]: 1}
    # Created, reminded, started, the first question, the second, its answer revealed, completed.
    assert len(made[0]) == 7
    assert hosted < ticks / 4


def test_a_movie_night_at_a_place_without_discord_id_still_tells_the_channel() -> None:
    guild, general, bot = snowflake(), snowflake(), snowflake()
    agent = agent_with(
        AgentMode.bare,
        behavior={
            "hosted_events": {
                "movies": {
                    "kind": "movie_night",
                    "title": "Movie night",
                    "on_date": "2026-01-16",
                    "time": "19:00",
                    "duration_minutes": 120,
                    "remind_minutes": 0,
                    "location": "Cinema Paradiso",
                }
            }
        },
    )
    engine = Engine(Tables(*({} for _ in fields(Tables))))
    host = deployed(agent, guild_id=guild, bot_id=bot, text_channels=[general])
    engine.deploy(routing(guild, host))
    [create] = actions_of(CreateScheduledEvent, engine.fire_events(guild, START - timedelta(hours=2)))
    assert create.location == "Cinema Paradiso" and create.voice_channel_id is None
    # Discord's create never came back: the start and end are said in the channel, no status is set.
    [start] = engine.fire_events(guild, START).actions
    assert isinstance(start, SendMessage) and "Movie night" in start.content
    assert not engine.fire_events(guild, START + timedelta(minutes=119))
    [end] = engine.fire_events(guild, START + timedelta(minutes=120)).actions
    assert isinstance(end, SendMessage) and "over" in end.content


def test_a_person_canceling_the_event_stops_the_host() -> None:
    hosting = hosting_guild()
    assert hosting.engine.fire_events(hosting.guild, START - timedelta(hours=2))
    scheduled = hosting.created_on_discord()
    hosting.dispatch("GUILD_SCHEDULED_EVENT_UPDATE", {**scheduled, "status": 4})
    assert not hosting.engine.fire_events(hosting.guild, START - timedelta(minutes=30))
    assert not hosting.engine.fire_events(hosting.guild, START)


def test_interest_comes_and_goes_once_and_a_crowd_is_counted_not_named() -> None:
    hosting = hosting_guild()
    assert hosting.engine.fire_events(hosting.guild, START - timedelta(hours=2))
    scheduled = hosting.created_on_discord()
    book_key = HostedEventsKey(hosting.guild).encode()
    people = [snowflake() for _ in range(53)]

    def interest(kind: str, user_id: str) -> None:
        data = {"guild_scheduled_event_id": scheduled["id"], "user_id": user_id, "guild_id": hosting.guild}
        hosting.dispatch(f"GUILD_SCHEDULED_EVENT_USER_{kind}", data)

    for user_id in people:
        interest("ADD", user_id)
    before = hosting.engine.tables.hosted_events[book_key]
    interest("ADD", people[0])  # redelivered
    assert hosting.engine.tables.hosted_events[book_key] is before
    interest("REMOVE", people[1])
    assert hosting.engine.tables.hosted_events[book_key].runs[0].interested == [people[0], *people[2:]]
    [reminder] = hosting.engine.fire_events(hosting.guild, START - timedelta(minutes=30)).actions
    assert isinstance(reminder, SendMessage)
    assert f"<@{people[0]}>" in reminder.content and f"<@{people[1]}>" not in reminder.content
    assert reminder.content.endswith(" and 2 more")
