"""The floor and the economy through the worker and the real broker: two AI agents and a user in one channel,
every bot delivering its own copy; and concurrent /give between two users."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from models.actions import InteractionResponse
from models.decisions import Decision, DecisionReason
from models.deployments import DeployedAgent
from models.events import EventEnvelope
from streams.catalog import AGENT_DECISIONS, DISCORD_ACTIONS, INFERENCE_LANES
from tests.processors.conftest import Collector, Producer, Worker
from tests.processors.factories import (
    T0,
    Where,
    chatty,
    deployed,
    envelope,
    message_data,
    routing,
    slash_event,
    snowflake,
    user,
)

pytestmark = pytest.mark.stack

GENERAL = snowflake()
KAI, MIA = user(snowflake(), "kai"), user(snowflake(), "mia")


async def post(
    produce: Producer, guild_id: str, agents: list[DeployedAgent], author: dict[str, Any], n: int
) -> str:
    at = T0 + timedelta(seconds=n)
    data = message_data(guild_id=guild_id, channel_id=GENERAL, author=author, content=f"so {n}", at=at)
    for agent in agents:
        bot = agent.deployment.bot_id
        await produce.event(
            envelope("MESSAGE_CREATE", data, bot_id=bot, guild_id=guild_id, channel_id=GENERAL, at=at)
        )
    return str(data["id"])


async def test_two_agents_answer_within_the_floor_and_banter_stops_at_the_cap(
    worker: Worker, produce: Producer, collector: Collector
) -> None:
    guild_id = snowflake()
    agents = [deployed(chatty(max_responders=1, max_agent_run=3), guild_id=guild_id, bot_id=snowflake())]
    agents.append(deployed(chatty(), guild_id=guild_id, bot_id=snowflake()))
    await produce.routing(routing(guild_id, *agents))
    ids = {a.deployment.deployment_id for a in agents}

    def on(message_id: str):
        return lambda d: isinstance(d, Decision) and d.message_id == message_id and d.deployment_id in ids

    first = await post(produce, guild_id, agents, KAI, 0)
    ruled = await collector.wait_for(AGENT_DECISIONS, on(first), count=2)
    assert sorted(d.respond for d in ruled) == [False, True]
    assert {d.reason for d in ruled if not d.respond} == {DecisionReason.floor_capped}
    # The agents' answers come back as their messages, seen by both bots: two more, then the cap.
    for n in range(1, 5):
        message_id = await post(
            produce, guild_id, agents, user(agents[n % 2].deployment.bot_id, "a", True), n
        )
        ruled = await collector.wait_for(AGENT_DECISIONS, on(message_id), count=2)
        answered = [d for d in ruled if d.respond]
        assert len(answered) == (1 if n < 3 else 0), (n, ruled)
    assert DecisionReason.floor_agent_run in {d.reason for d in ruled}
    requests = [r for spec in INFERENCE_LANES.values() for r in collector.of(spec) if r.deployment_id in ids]
    assert len(requests) == 3


async def test_concurrent_gives_between_two_users_keep_every_coin(
    worker: Worker, produce: Producer, collector: Collector
) -> None:
    guild_id = snowflake()
    banker = deployed(chatty(), guild_id=guild_id, bot_id=snowflake())
    await produce.routing(routing(guild_id, banker))
    bot = banker.deployment.bot_id

    def command(invoker: dict[str, Any], name: str, **options: Any) -> EventEnvelope:
        where = Where(bot, guild_id, GENERAL)
        return slash_event(where, invoker, name, {k: str(v) for k, v in options.items()})

    daily = [command(person, "daily") for person in (KAI, MIA)]
    gives = [command(KAI, "give", user=MIA["id"], amount=30) for _ in range(6)]
    gives += [command(MIA, "give", user=KAI["id"], amount=45) for _ in range(6)]
    for event in daily:
        await produce.event(event)
    await asyncio.gather(*(produce.event(event) for event in gives))
    await produce.event(gives[0])  # redelivered
    balances = [command(person, "balance") for person in (KAI, MIA)]
    for event in balances:
        await produce.event(event)

    def answers(event_ids: set[str]) -> list[InteractionResponse]:
        return [
            a
            for a in collector.of(DISCORD_ACTIONS)
            if isinstance(a, InteractionResponse) and a.cause_event_id in event_ids
        ]

    await collector.wait_for(
        DISCORD_ACTIONS,
        lambda a: isinstance(a, InteractionResponse) and a.cause_event_id == balances[1].event_id,
    )
    done = answers({g.event_id for g in gives})
    assert len(done) == len(gives)  # the redelivered give is not answered again
    held = [int(a.content.split(" has ")[1].split()[0]) for a in answers({b.event_id for b in balances})]
    assert sum(held) == 200 and min(held) >= 0
    refused = sum("You have only" in a.content for a in done)
    moved = {a.content for a in done if "gave" in a.content}
    assert refused + len([a for a in done if "gave" in a.content]) == len(gives) and moved
