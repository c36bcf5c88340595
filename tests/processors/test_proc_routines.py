"""Routines and story arcs: the pure schedule (time zones, a DST day, quiet hours, budgets, windows), the
configuration's validation, and the engine's routine timer over in-memory tables."""

from __future__ import annotations

from copy import deepcopy
from dataclasses import fields
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from models.actions import SendMessage, VoiceJoin
from models.agent import (
    AgentConfig,
    AgentMode,
    ContentRating,
    PersonalityTraits,
    ProactiveAction,
    RoutineSchedule,
)
from models.common import error_paths
from models.decisions import DecisionReason, Priority
from models.deployments import DeployedAgent
from processors.directory import apply_directory_event
from processors.engine import Engine, Tables
from processors.routines import beat_on, routine_times, situations_on, text_channel
from processors.traits import routine_jitter_s
from tests.processors.factories import (
    agent_with,
    deployed,
    envelope,
    guild_create,
    luna,
    message_data,
    routing,
    snowflake,
    user,
)

DEPLOYMENT = UUID("00000000-0000-4000-8000-0000000000aa")
PUNCTUAL = PersonalityTraits(conscientiousness=100)
BERLIN = RoutineSchedule(time_zone="Europe/Berlin", quiet_hours={"start": "23:00", "end": "08:00"})
KAI = user(snowflake(), "kai")


def routine(**fields_: Any) -> ProactiveAction:
    return ProactiveAction.model_validate({"enabled": True, **fields_})


def times(
    action: ProactiveAction, day: date, schedule: RoutineSchedule = BERLIN, **kw: Any
) -> list[datetime]:
    traits = kw.get("traits", PUNCTUAL)
    return routine_times(kw.get("deployment", DEPLOYMENT), day, "r", action, schedule, traits)


# The pure schedule -------------------------------------------------------------------------------------


def test_a_fixed_time_is_local_time_in_the_agents_zone() -> None:
    # 10:00 in Berlin is 09:00 UTC in winter and 08:00 UTC in summer.
    assert times(routine(time="10:00"), date(2026, 1, 15)) == [datetime(2026, 1, 15, 9, 0, tzinfo=UTC)]
    assert times(routine(time="10:00"), date(2026, 7, 15)) == [datetime(2026, 7, 15, 8, 0, tzinfo=UTC)]


def test_on_the_dst_day_the_greeting_stays_at_ten_local() -> None:
    new_york = RoutineSchedule(time_zone="America/New_York")
    before, dst_day = date(2026, 3, 7), date(2026, 3, 8)  # clocks go forward on 8 March 2026
    [saturday] = times(routine(time="10:00"), before, new_york)
    [sunday] = times(routine(time="10:00"), dst_day, new_york)
    assert saturday == datetime(2026, 3, 7, 15, 0, tzinfo=UTC)
    assert sunday == datetime(2026, 3, 8, 14, 0, tzinfo=UTC)
    assert sunday.astimezone(ZoneInfo("America/New_York")).time() == time(10, 0)


def test_a_less_conscientious_character_is_late_by_at_most_its_jitter() -> None:
    lax = PersonalityTraits(conscientiousness=20)
    late = [times(routine(time="10:00"), date(2026, 1, d), traits=lax)[0] for d in range(1, 29)]
    on_time = [datetime(2026, 1, d, 9, 0, tzinfo=UTC) for d in range(1, 29)]
    delays = [(at - due).total_seconds() for at, due in zip(late, on_time, strict=True)]
    assert all(0 <= delay <= routine_jitter_s(lax) for delay in delays)
    assert len(set(delays)) > 1  # drawn per day, not one fixed delay


def test_nothing_fires_in_quiet_hours_even_across_midnight() -> None:
    assert times(routine(time="23:30"), date(2026, 1, 15)) == []
    assert times(routine(time="07:59"), date(2026, 1, 15)) == []
    assert times(routine(time="08:00"), date(2026, 1, 15)) != []
    daily = [times(routine(frequency="daily"), date(2026, 1, d))[0] for d in range(1, 29)]
    assert all(time(8, 0) <= at.astimezone(BERLIN.zone).time() < time(23, 0) for at in daily)


def test_random_thoughts_land_inside_their_window_outside_quiet_hours_within_budget() -> None:
    thoughts = routine(frequency="every 2-4 hours", daily_budget=24)
    schedule = RoutineSchedule(time_zone="Europe/Berlin")
    for day in range(1, 15):
        fired = times(thoughts, date(2026, 1, day), schedule)
        local = [at.astimezone(schedule.zone) for at in fired]
        gaps = [later - earlier for earlier, later in pairwise(local)]
        assert all(timedelta(hours=2) <= gap <= timedelta(hours=4) for gap in gaps)
        midnight = datetime.combine(date(2026, 1, day), time(0), tzinfo=schedule.zone)
        assert timedelta(hours=2) <= local[0] - midnight <= timedelta(hours=4)
        assert 5 <= len(fired) <= 12
        quiet = times(thoughts, date(2026, 1, day))
        assert set(quiet) <= set(fired)
        assert all(time(8, 0) <= at.astimezone(BERLIN.zone).time() < time(23, 0) for at in quiet)
    budget = times(routine(frequency="every 1 hour", daily_budget=3), date(2026, 1, 15))
    assert len(budget) == 3


def test_firing_times_are_a_function_of_deployment_day_and_routine() -> None:
    thoughts = routine(frequency="every 2-4 hours", daily_budget=10)
    day = date(2026, 1, 15)
    assert times(thoughts, day) == times(thoughts, day)
    other = UUID("00000000-0000-4000-8000-0000000000bb")
    assert times(thoughts, day) != times(thoughts, day, deployment=other)
    assert times(thoughts, day) != times(thoughts, day + timedelta(days=1))


# Validation ---------------------------------------------------------------------------------------------


def invalid(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        AgentConfig.model_validate(data)
    return error_paths(caught.value)


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"schedule": {"time_zone": "Mars/Olympus"}}, "behavior.schedule.time_zone"),
        (
            {"schedule": {"quiet_hours": {"start": "23:00", "end": "23:00"}}},
            "behavior.schedule.quiet_hours.end",
        ),
        (
            {"schedule": {"quiet_hours": {"start": "25:00", "end": "08:00"}}},
            "behavior.schedule.quiet_hours.start",
        ),
        ({"proactive_actions": {"x": {"frequency": "sometimes"}}}, "behavior.proactive_actions.x.frequency"),
        (
            {"proactive_actions": {"x": {"frequency": "every 5-2 hours"}}},
            "behavior.proactive_actions.x.frequency",
        ),
        (
            {"proactive_actions": {"x": {"time": "10:00", "frequency": "every 2 hours"}}},
            "behavior.proactive_actions.x.frequency",
        ),
        ({"proactive_actions": {"x": {"enabled": True}}}, "behavior.proactive_actions.x.time"),
        (
            {"proactive_actions": {"x": {"time": "10:00", "daily_budget": 2}}},
            "behavior.proactive_actions.x.daily_budget",
        ),
        (
            {"proactive_actions": {"x": {"time": "10:00", "action": "dance"}}},
            "behavior.proactive_actions.x.action",
        ),
        (
            {
                "story_arcs": [
                    {"name": "a", "starts_on": "2026-01-01", "beats": [{"days": 1, "situation": "s"}]}
                ]
                * 2
            },
            "behavior.story_arcs",
        ),
    ],
)
def test_routine_settings_are_validated_naming_the_field(change: dict[str, Any], path: str) -> None:
    data = luna().model_dump(mode="json")
    data["behavior"].update(change)
    assert any(p.startswith(path) for p in invalid(data)), invalid(data)


def test_an_agent_without_ai_needs_the_text_and_cannot_take_topics() -> None:
    data = agent_with(AgentMode.utility).model_dump(mode="json")
    data["behavior"]["proactive_actions"] = {"hello": {"enabled": True, "time": "09:00"}}
    assert invalid(data) == ["behavior.proactive_actions.hello.message_template"]
    data["behavior"]["proactive_actions"]["hello"].update(message_template="Morning!", topics=["x"])
    assert invalid(data) == ["behavior.proactive_actions.hello.topics"]


# The engine's timer ------------------------------------------------------------------------------------

GUILD, GENERAL, LOUNGE = snowflake(), snowflake(), snowflake()
LUNA_BOT, GREETER_BOT = snowflake(), snowflake()
DAY = date(2026, 1, 15)  # 10:00 in Berlin is 09:00 UTC


def luna_in_berlin(**behavior: Any) -> AgentConfig:
    data = luna().model_dump(mode="json")
    data["character"]["personality"]["conscientiousness"] = 100
    data["channels"]["voice_channels"] = [LOUNGE]
    data["behavior"].update(
        {
            "schedule": BERLIN.model_dump(),
            "proactive_actions": {
                "morning_greeting": {"enabled": True, "time": "10:00", "message_template": "Good morning~"},
                "voice_check_in": {"enabled": True, "time": "18:00", "action": "voice_check_in"},
            },
            **behavior,
        }
    )
    return AgentConfig.model_validate(data)


def utc(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


def setup(agent: AgentConfig, bot: str = LUNA_BOT) -> tuple[Engine, DeployedAgent]:
    engine = Engine(Tables(*({} for _ in fields(Tables))))
    companion = deployed(
        agent, guild_id=GUILD, bot_id=bot, text_channels=[GENERAL], deployed_at=utc(0, day=DAY - timedelta(3))
    )
    assert engine.apply_routing(routing(GUILD, companion))
    created = guild_create(GUILD, owner_id=snowflake(), channels={GENERAL: "general"})
    engine.handle_event(envelope("GUILD_CREATE", created, bot_id=bot, guild_id=GUILD))
    return engine, companion


def someone_speaks(engine: Engine, at: datetime, bot: str = LUNA_BOT) -> None:
    data = message_data(guild_id=GUILD, channel_id=GENERAL, author=KAI, content="hi all", at=at)
    engine.handle_event(
        envelope("MESSAGE_CREATE", data, bot_id=bot, guild_id=GUILD, channel_id=GENERAL, at=at)
    )


def test_luna_greets_once_at_ten_local_through_the_inference_lanes() -> None:
    engine, _ = setup(luna_in_berlin())
    someone_speaks(engine, utc(7))
    assert not engine.fire_routines(GUILD, utc(8, 59))
    fired = engine.fire_routines(GUILD, utc(9, 0))
    [decision] = fired.decisions
    assert (decision.reason, decision.routine, decision.respond) == (
        DecisionReason.proactive,
        "morning_greeting",
        True,
    )
    assert decision.priority is Priority.low and decision.channel_id == GENERAL
    assert decision.reason_label == "proactive:morning_greeting"
    [request] = fired.requests
    assert request.target.channel_id == GENERAL and request.target.message_id is None
    assert "Good morning~" in request.messages[-1].content
    assert request.event_id == decision.event_id
    # Later ticks (or a redelivered timer run) never fire it again; the next day it fires anew.
    assert not engine.fire_routines(GUILD, utc(9, 1))
    assert not engine.fire_routines(GUILD, utc(12, 0))
    someone_speaks(engine, utc(7, day=DAY + timedelta(1)))
    [again] = engine.fire_routines(GUILD, utc(9, 0, DAY + timedelta(1))).decisions
    assert again.routine == "morning_greeting" and again.event_id != decision.event_id


def test_an_empty_channel_gets_no_monologue() -> None:
    engine, _ = setup(luna_in_berlin())
    someone_speaks(engine, utc(9) - timedelta(hours=25))
    fired = engine.fire_routines(GUILD, utc(9, 0))
    [decision] = fired.decisions
    assert decision.reason is DecisionReason.proactive_skipped and not decision.respond
    assert not fired.requests and not fired.actions
    assert not engine.fire_routines(GUILD, utc(9, 5))  # skipped is decided once, too


def test_an_nsfw_character_posts_no_routine_outside_age_restricted_channels() -> None:
    agent = luna_in_berlin()
    assert agent.character is not None
    character = agent.character.model_copy(update={"content_rating": ContentRating.nsfw})
    engine, _ = setup(agent.model_copy(update={"character": character}))
    someone_speaks(engine, utc(7))
    fired = engine.fire_routines(GUILD, utc(9, 0))
    [decision] = fired.decisions
    assert decision.reason is DecisionReason.nsfw_channel_not_age_restricted and not decision.respond
    assert not fired.requests and not fired.actions


def test_the_voice_check_in_joins_a_voice_channel_then_speaks() -> None:
    engine, _ = setup(luna_in_berlin())
    someone_speaks(engine, utc(16))
    # The 10:00 greeting is more than an hour late at 18:00 local (the worker was down): dropped.
    fired = engine.fire_routines(GUILD, utc(17, 0))
    assert [d.routine for d in fired.decisions] == ["voice_check_in"]
    [join] = [a for a in fired.actions if isinstance(a, VoiceJoin)]
    assert join.channel_id == LOUNGE and join.bot_id == LUNA_BOT
    assert len(fired.requests) == 1


def test_an_agent_without_ai_posts_its_text_as_written() -> None:
    greeter = agent_with(
        AgentMode.utility,
        behavior={
            "schedule": {"time_zone": "Europe/Berlin"},
            "proactive_actions": {
                "hello": {
                    "enabled": True,
                    "time": "10:00",
                    "message_template": "Morning!",
                    "skip_when_silent_h": 0,
                }
            },
        },
    )
    engine, _ = setup(greeter, GREETER_BOT)
    # Neutral conscientiousness: up to a quarter of an hour late.
    fired = engine.fire_routines(GUILD, utc(9, 30))
    [sent] = fired.actions
    assert isinstance(sent, SendMessage) and sent.channel_id == GENERAL
    assert sent.embed is not None and sent.embed.description == "Morning!"  # the utility template's style
    # The action id derives from the firing: made again after a crash, the gateway performs it once.
    engine.tables.routines.clear()
    restarted = Engine(engine.tables)
    [again] = restarted.fire_routines(GUILD, utc(9, 30)).actions
    assert again.action_id == sent.action_id


def test_no_firing_from_before_the_deployment_existed() -> None:
    engine = Engine(Tables(*({} for _ in fields(Tables))))
    companion = deployed(
        luna_in_berlin(), guild_id=GUILD, bot_id=LUNA_BOT, text_channels=[GENERAL], deployed_at=utc(12)
    )
    engine.apply_routing(routing(GUILD, companion))
    assert not engine.fire_routines(GUILD, utc(13))


# Story arcs --------------------------------------------------------------------------------------------

BAKING = {
    "name": "baking",
    "starts_on": "2026-01-14",
    "post_time": "12:00",
    "beats": [
        {
            "days": 1,
            "situation": "You just bought flour and a mixer.",
            "announcement": "Guess what I bought!",
        },
        {"days": 3, "situation": "Your first cakes keep collapsing.", "announcement": "My cake collapsed..."},
        {"days": 1, "situation": "You baked a perfect cake."},
    ],
}


def test_the_current_beat_follows_the_dates() -> None:
    arc = luna_in_berlin(story_arcs=[BAKING]).behavior.story_arcs[0]
    assert beat_on(arc, date(2026, 1, 13)) is None
    assert [beat_on(arc, date(2026, 1, d))[0] for d in range(14, 19)] == [0, 1, 1, 1, 2]  # type: ignore[index]
    assert beat_on(arc, date(2026, 1, 19)) is None
    assert situations_on([arc], date(2026, 1, 16)) == ["Your first cakes keep collapsing."]


def test_a_beat_is_announced_on_its_first_day_and_enters_the_prompt() -> None:
    engine, _ = setup(luna_in_berlin(story_arcs=[BAKING], proactive_actions={}))
    someone_speaks(engine, utc(10))
    fired = engine.fire_routines(GUILD, utc(11, 0))  # 12:00 in Berlin, 15 January: beat 1 begins
    [decision] = fired.decisions
    assert decision.routine == "arc:baking:1"
    [request] = fired.requests
    assert "My cake collapsed..." in request.messages[-1].content
    assert "Your first cakes keep collapsing." in request.messages[0].content
    assert not engine.fire_routines(GUILD, utc(11, 0, DAY + timedelta(1))).decisions  # mid-beat: silent
    luna_id = "<@" + LUNA_BOT + ">"
    data = message_data(
        guild_id=GUILD,
        channel_id=GENERAL,
        author=KAI,
        content=f"{luna_id} how's the baking?",
        at=utc(13),
        mentions=[user(LUNA_BOT, "luna", True)],
    )
    reply = engine.handle_event(
        envelope("MESSAGE_CREATE", data, bot_id=LUNA_BOT, guild_id=GUILD, channel_id=GENERAL, at=utc(13))
    )
    [asked] = reply.requests
    assert "Your first cakes keep collapsing." in asked.messages[0].content


def test_without_a_named_channel_the_home_channel_is_the_system_channel_else_the_first_text_one() -> None:
    guild, voice, first, second = snowflake(), snowflake(), snowflake(), snowflake()
    created = guild_create(guild, owner_id=snowflake(), channels={voice: "Lounge", second: "b", first: "a"})
    created["channels"][0]["type"] = 2
    created["channels"][1]["position"], created["channels"][2]["position"] = 5, 1
    directory = apply_directory_event(None, guild, "GUILD_CREATE", created)
    assert directory is not None and directory.home_channel == first
    with_system = apply_directory_event(
        directory, guild, "GUILD_UPDATE", {"id": guild, "system_channel_id": second}
    )
    assert with_system is not None and with_system.home_channel == second
    data = luna().model_dump(mode="json")
    data["channels"]["text_channels"] = []
    unnamed = deployed(AgentConfig.model_validate(data), guild_id=guild, bot_id=snowflake())
    assert text_channel(unnamed, "", with_system) == second
    named = deployed(unnamed.agent, guild_id=guild, bot_id=snowflake(), text_channels=[first])
    assert text_channel(named, "", with_system) == first
    deleted = apply_directory_event(with_system, guild, "CHANNEL_DELETE", {"id": second, "type": 0})
    assert deleted is not None and text_channel(unnamed, "", deleted) is None


def test_ticks_skipped_until_the_next_wake_make_what_looking_every_time_makes() -> None:
    """The timer skips a key until its next possible firing or local midnight: ticked every five minutes
    over two days (random thoughts, a greeting, a check-in at 18:00, talk in between), it makes exactly the
    decisions of an engine that looks at everything at every tick."""
    agent = luna_in_berlin(
        proactive_actions={
            "morning_greeting": {"enabled": True, "time": "10:00", "message_template": "Good morning~"},
            "random_thought": {"enabled": True, "frequency": "every 2-4 hours", "topics": ["stars"]},
            "voice_check_in": {"enabled": True, "time": "18:00", "action": "voice_check_in"},
        }
    )
    remembering, _ = setup(agent)
    looking = Engine(deepcopy(remembering.tables))
    made: tuple[list[str], list[str]] = ([], [])
    now = utc(0)
    while now < utc(0, day=DAY + timedelta(2)):
        if now.minute == 0 and now.hour % 3 == 0:
            someone_speaks(remembering, now)
            someone_speaks(looking, now)
        made[0].extend(f"{d.event_id} {d.reason}" for d in remembering.fire_routines(GUILD, now).decisions)
        # A new engine over the same tables remembers no wake-up time.
        fresh = Engine(looking.tables)
        made[1].extend(f"{d.event_id} {d.reason}" for d in fresh.fire_routines(GUILD, now).decisions)
        now += timedelta(minutes=5)
    assert made[0] == made[1]
    assert len(made[0]) >= 6  # two greetings, two check-ins, random thoughts
