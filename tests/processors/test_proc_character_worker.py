"""Character through the worker and the real broker: two agents differing only in extraversion answer the
same stream at clearly different rates, a friend gets unprompted answers a stranger does not, and deploying
asks the gateway to dress each bot in its persona.

Event and deployment ids are fixed, so the dice (a hash of both) are the same on every run."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from models.actions import MemberPersonaUpdate
from models.agent import AgentConfig, PersonalityTraits
from models.decisions import Decision
from models.deployments import DeployedAgent
from models.events import EventEnvelope
from models.inference import InferenceRequest
from processors.traits import odds_scaled, sociability
from streams.catalog import AGENT_DECISIONS, DISCORD_ACTIONS, INFERENCE_LANES
from tests.processors.conftest import Collector, Producer, Worker
from tests.processors.factories import (
    T0,
    deployed,
    envelope,
    guild_create,
    luna,
    message_data,
    routing,
    snowflake,
    user,
)

pytestmark = pytest.mark.stack

STREAM = 60
SECONDS = itertools.count()
RANDOM = 0.2
GENERAL = snowflake()
STRANGER, FRIEND = user(snowflake(), "sam"), user(snowflake(), "fran")


def character(extraversion: int) -> AgentConfig:
    """Luna whose only unprompted trigger is the random one, in every channel."""
    data = luna().model_dump(mode="json")
    data["character"]["personality"]["extraversion"] = extraversion
    data["channels"]["text_channels"] = []
    data["behavior"]["response_triggers"] = {
        "keyword_match": {"probability": 0.0},
        "conversation_flow": {"probability": 0.0},
        "random": {"probability": RANDOM},
        "bored": {"probability": 0.0},
    }
    return AgentConfig.model_validate(data)


def said(
    guild_id: str, bot: DeployedAgent, author: dict[str, Any], content: str, event_id: str, **extra: Any
) -> EventEnvelope:
    """A message sent a second after the one before: an interaction not newer than the last one counts as
    a redelivery."""
    at = T0 + timedelta(seconds=next(SECONDS))
    data = message_data(guild_id=guild_id, channel_id=GENERAL, author=author, content=content, at=at, **extra)
    made = envelope(
        "MESSAGE_CREATE", data, bot_id=bot.deployment.bot_id, guild_id=guild_id, channel_id=GENERAL, at=at
    )
    return EventEnvelope.model_validate({**made.model_dump(), "event_id": event_id})


def requests_of(collector: Collector, deployment: DeployedAgent) -> list[InferenceRequest]:
    return [
        r
        for spec in INFERENCE_LANES.values()
        for r in collector.of(spec)
        if r.deployment_id == deployment.deployment.deployment_id
    ]


async def test_extraversion_and_affinity_change_how_often_the_agent_speaks_unprompted(
    worker: Worker, produce: Producer, collector: Collector
) -> None:
    guild_id = snowflake()
    reserved, outgoing, judge = (
        deployed(character(e), guild_id=guild_id, bot_id=snowflake(), deployment_id=UUID(int=n))
        for e, n in ((10, 1310), (90, 1390), (50, 1350))
    )
    await produce.routing(routing(guild_id, reserved, outgoing, judge))
    # Deploying dresses every bot in its persona in the guild: proof the worker holds the configuration.
    personas = await collector.wait_for(
        DISCORD_ACTIONS,
        lambda a: isinstance(a, MemberPersonaUpdate) and a.guild_id == guild_id and a.nick == "Luna",
        count=3,
    )
    assert {p.bot_id for p in personas} == {d.deployment.bot_id for d in (reserved, outgoing, judge)}
    created = guild_create(guild_id, owner_id=snowflake(), channels={GENERAL: "general"}, roles={})
    for bot in (reserved, outgoing, judge):
        await produce.event(
            envelope("GUILD_CREATE", created, bot_id=bot.deployment.bot_id, guild_id=guild_id)
        )

    # The friend is made one: thanked the agent five times, each +4 affinity from 50.
    judge_bot = judge.deployment.bot_id
    for n in range(5):
        await produce.event(
            said(
                guild_id,
                judge,
                FRIEND,
                f"<@{judge_bot}> thank you, you are awesome!",
                f"character-thanks-{n}",
                mentions=[user(judge_bot, "luna", bot=True)],
            )
        )
    for n in range(STREAM):
        for bot in (reserved, outgoing):
            await produce.event(
                said(
                    guild_id,
                    bot,
                    STRANGER,
                    f"what a day {n}",
                    f"character-stream-{bot.deployment.deployment_id}-{n}",
                )
            )
        for person in (STRANGER, FRIEND):
            await produce.event(
                said(guild_id, judge, person, f"what a day {n}", f"character-{person['username']}-{n}")
            )

    def decided(deployment: DeployedAgent):
        return lambda d: isinstance(d, Decision) and d.deployment_id == deployment.deployment.deployment_id

    await collector.wait_for(AGENT_DECISIONS, decided(reserved), count=STREAM)
    await collector.wait_for(AGENT_DECISIONS, decided(outgoing), count=STREAM)
    await collector.wait_for(AGENT_DECISIONS, decided(judge), count=5 + 2 * STREAM)

    quiet, chatty = len(requests_of(collector, reserved)), len(requests_of(collector, outgoing))
    # Configured 0.2: about 0.06 at extraversion 10 and 0.48 at 90.
    expected = [odds_scaled(RANDOM, sociability(PersonalityTraits(extraversion=e))) for e in (10, 90)]
    assert expected[0] < 0.1 and expected[1] > 0.4
    assert chatty >= quiet + STREAM // 5, (quiet, chatty)
    decisions = [d for d in collector.of(AGENT_DECISIONS) if decided(outgoing)(d) and d.respond]
    # Recorded as decided: the extravert's chance, raised further once so much talk made Sam a friend.
    chances = sorted({round(d.probability, 6) for d in decisions if d.probability is not None})
    assert chances[0] == pytest.approx(expected[1], abs=1e-6) and len(decisions) == chatty

    answered = [
        r.target.author_id
        for r in requests_of(collector, judge)
        if r.event_id.startswith("character-") and "thanks" not in r.event_id
    ]
    to_friend, to_stranger = answered.count(FRIEND["id"]), answered.count(STRANGER["id"])
    # A friend's odds are four times a stranger's: 0.5 against 0.2.
    assert to_friend >= to_stranger + STREAM // 6, (to_friend, to_stranger)
    # The same message from the same moment: some the friend got answered, the stranger did not.
    friend_only = {
        r.event_id.rsplit("-", 1)[1]
        for r in requests_of(collector, judge)
        if r.target.author_id == FRIEND["id"] and "thanks" not in r.event_id
    }
    stranger_only = {
        r.event_id.rsplit("-", 1)[1]
        for r in requests_of(collector, judge)
        if r.target.author_id == STRANGER["id"]
    }
    assert friend_only - stranger_only
