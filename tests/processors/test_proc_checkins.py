"""Check-ins on regulars: who counts as away, whom the day's check-ins address (affinity-weighted,
deterministic per deployment, day and routine), the configuration's validation, and the engine's timer
addressing the person with or without AI."""

from __future__ import annotations

from collections import Counter
from dataclasses import fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

import pytest
from pydantic import ValidationError

from models.actions import SendMessage
from models.agent import AgentConfig, AgentMode, RelationshipSettings
from models.common import error_paths
from models.decisions import DecisionReason
from models.deployments import DeployedAgent
from models.state import Relationship
from processors.checkins import REGULAR_INTERACTIONS, check_in_on, check_in_order, regulars_away
from processors.engine import Engine, Tables
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

DEPLOYMENT = UUID("00000000-0000-4000-8000-0000000000cc")
DAY = date(2026, 1, 15)
SETTINGS = RelationshipSettings()  # cold below 30, friends from 70
NOON = datetime.combine(DAY, time(12), tzinfo=UTC)


def known(user_id: str, *, affinity: int = 50, count: int = 10, days_ago: float = 5) -> Relationship:
    return Relationship(
        user_id=user_id,
        display_name=f"user {user_id}",
        affinity=affinity,
        interaction_count=count,
        last_interaction=NOON - timedelta(days=days_ago),
    )


def test_a_regular_away_has_talked_enough_is_not_cold_and_was_not_seen_lately() -> None:
    people = [
        known("1"),
        known("2", count=REGULAR_INTERACTIONS - 1),
        known("3", affinity=10),
        known("4", days_ago=1),
        Relationship(user_id="5", interaction_count=20),  # never talked with: no last interaction
        known("6", affinity=90, days_ago=3),
    ]
    away = regulars_away(people, NOON, timedelta(days=3), SETTINGS)
    assert [r.user_id for r in away] == ["1", "6"]


def test_the_order_is_a_function_of_deployment_day_and_routine() -> None:
    people = [known(str(n)) for n in range(1, 9)]

    def order(deployment: UUID = DEPLOYMENT, day: date = DAY, routine: str = "check_in") -> list[str]:
        return [r.user_id for r in check_in_order(deployment, day, routine, people, SETTINGS)]

    assert (
        order()
        == order()
        == [r.user_id for r in check_in_order(DEPLOYMENT, DAY, "check_in", people[::-1], SETTINGS)]
    )
    assert sorted(order()) == [str(n) for n in range(1, 9)]
    assert order() != order(day=DAY + timedelta(days=1))
    assert order() != order(deployment=UUID(int=1))
    assert order() != order(routine="other")


def test_friends_are_checked_in_on_first_more_often() -> None:
    friend, acquaintance = known("1", affinity=80), known("2", affinity=50)
    first = Counter(
        check_in_order(DEPLOYMENT, DAY + timedelta(days=n), "check_in", [friend, acquaintance], SETTINGS)[
            0
        ].user_id
        for n in range(400)
    )
    # With weights 4 and 1 the friend comes first four times in five.
    assert 0.7 < first[friend.user_id] / 400 < 0.9


def test_the_days_check_ins_address_different_people_then_nobody() -> None:
    people = [known("1"), known("2")]
    chosen = [check_in_on(DEPLOYMENT, DAY, "check_in", slot, people, SETTINGS) for slot in range(3)]
    assert chosen[2] is None
    assert {r.user_id for r in chosen if r is not None} == {"1", "2"}


def test_away_days_belongs_to_check_ins_only() -> None:
    data = luna().model_dump(mode="json")
    data["behavior"]["proactive_actions"] = {"x": {"time": "10:00", "away_days": 2}}
    with pytest.raises(ValidationError) as caught:
        AgentConfig.model_validate(data)
    assert error_paths(caught.value) == ["behavior.proactive_actions.x.away_days"]
    data["behavior"]["proactive_actions"]["x"]["action"] = "check_in"
    AgentConfig.model_validate(data)


# The engine's timer ------------------------------------------------------------------------------------

GUILD, GENERAL, BOT = snowflake(), snowflake(), snowflake()
CHECK_IN = {"enabled": True, "time": "18:00", "action": "check_in", "skip_when_silent_h": 0}


def with_check_in(agent: AgentConfig, **routine: Any) -> AgentConfig:
    data = agent.model_dump(mode="json")
    if data["character"] is not None:
        data["character"]["personality"]["conscientiousness"] = 100
    data["behavior"].update(
        {"schedule": {"time_zone": "UTC"}, "proactive_actions": {"check_in": {**CHECK_IN, **routine}}}
    )
    return AgentConfig.model_validate(data)


def setup(agent: AgentConfig) -> tuple[Engine, DeployedAgent]:
    engine = Engine(Tables(*({} for _ in fields(Tables))))
    companion = deployed(
        agent, guild_id=GUILD, bot_id=BOT, text_channels=[GENERAL], deployed_at=NOON - timedelta(30)
    )
    assert engine.apply_routing(routing(GUILD, companion))
    created = guild_create(GUILD, owner_id=snowflake(), channels={GENERAL: "general"})
    engine.handle_event(envelope("GUILD_CREATE", created, bot_id=BOT, guild_id=GUILD))
    return engine, companion


def talks_with(engine: Engine, person: dict[str, Any], times: int, last: datetime) -> None:
    """`person` addresses the agent `times` times, the last at `last`."""
    for back in range(times - 1, -1, -1):
        at = last - timedelta(minutes=back)
        data = message_data(
            guild_id=GUILD,
            channel_id=GENERAL,
            author=person,
            content=f"<@{BOT}> hello!",
            at=at,
            mentions=[user(BOT, "luna", True)],
        )
        engine.handle_event(
            envelope("MESSAGE_CREATE", data, bot_id=BOT, guild_id=GUILD, channel_id=GENERAL, at=at)
        )


EVENING = datetime.combine(DAY, time(18), tzinfo=UTC)


def test_luna_checks_in_on_the_regular_away_addressing_them() -> None:
    engine, _ = setup(with_check_in(luna()))
    away, around = user(snowflake(), "mira"), user(snowflake(), "kai")
    talks_with(engine, away, REGULAR_INTERACTIONS, EVENING - timedelta(days=4))
    talks_with(engine, around, REGULAR_INTERACTIONS, EVENING - timedelta(hours=2))
    fired = engine.fire_routines(GUILD, EVENING)
    [decision] = fired.decisions
    assert (decision.reason, decision.routine, decision.author_id) == (
        DecisionReason.proactive,
        "check_in",
        away["id"],
    )
    [request] = fired.requests
    assert request.target.author_id == away["id"] and request.target.greet_as == f"<@{away['id']}>"
    assert "checking in on 'Mira'" in request.messages[-1].content
    assert not engine.fire_routines(GUILD, EVENING + timedelta(minutes=1))


def test_nobody_away_skips_the_check_in() -> None:
    engine, _ = setup(with_check_in(luna()))
    talks_with(engine, user(snowflake(), "kai"), REGULAR_INTERACTIONS, EVENING - timedelta(hours=2))
    fired = engine.fire_routines(GUILD, EVENING)
    [decision] = fired.decisions
    assert decision.reason is DecisionReason.proactive_skipped and not fired.requests and not fired.actions


def test_without_ai_the_check_in_opens_with_the_mention() -> None:
    greeter = with_check_in(agent_with(AgentMode.utility), message_template="We miss you!", away_days=2)
    engine, companion = setup(greeter)
    person = known(snowflake(), days_ago=2)
    engine.store_relationship(GUILD, companion, person, person.last_interaction or NOON)
    # Without a character, neutral conscientiousness: up to a quarter of an hour late.
    [sent] = engine.fire_routines(GUILD, EVENING + timedelta(minutes=30)).actions
    assert isinstance(sent, SendMessage) and sent.embed is not None
    description = sent.embed.description or ""
    assert description.startswith(("Hey", "Hi", "Hello")) and f"<@{person.user_id}>" in description
    assert description.endswith("We miss you!")
