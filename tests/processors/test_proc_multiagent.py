"""Several agents in one channel and the guild economy, through the engine over in-memory tables: every bot
delivers its own copy of a message, as Discord does."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from models.actions import InteractionResponse, SendMessage
from models.decisions import Decision, DecisionReason
from models.deployments import DeployedAgent
from models.events import EventEnvelope
from models.processor_state import TABLE_VALUE_MAX_BYTES, Wallets
from models.table_keys import EconomyKey, RelationshipKey
from processors.economy import FULL
from processors.engine import Engine, Outputs, Tables
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

GUILD, GENERAL = snowflake(), snowflake()
KAI, MIA = user(snowflake(), "kai"), user(snowflake(), "mia")


def room(count: int, **floor: int) -> tuple[Engine, list[DeployedAgent]]:
    engine = Engine(Tables(*({} for _ in range(len(dataclasses.fields(Tables))))))
    agents = [deployed(chatty(**floor), guild_id=GUILD, bot_id=snowflake()) for _ in range(count)]
    assert engine.apply_routing(routing(GUILD, *agents))
    return engine, agents


def copies(data: dict[str, Any], agents: list[DeployedAgent], seconds: int) -> list[EventEnvelope]:
    at = T0 + timedelta(seconds=seconds)
    return [
        envelope(
            "MESSAGE_CREATE", data, bot_id=a.deployment.bot_id, guild_id=GUILD, channel_id=GENERAL, at=at
        )
        for a in agents
    ]


def post(engine: Engine, agents: list[DeployedAgent], author: dict[str, Any], seconds: int) -> Outputs:
    """A message every bot of the room receives; the outputs of all its copies."""
    at = T0 + timedelta(seconds=seconds)
    data = message_data(guild_id=GUILD, channel_id=GENERAL, author=author, content=f"hey {seconds}", at=at)
    out = Outputs()
    for copy in copies(data, agents, seconds):
        handled = engine.handle_event(copy)
        out.decisions += handled.decisions
        out.requests += handled.requests
    return out


def decision_of(out: Outputs, agent: DeployedAgent) -> Decision:
    [decision] = [d for d in out.decisions if d.deployment_id == agent.deployment.deployment_id]
    return decision


def test_at_most_m_agents_answer_one_message_and_the_others_say_why() -> None:
    engine, agents = room(3)
    out = post(engine, agents, KAI, 0)
    assert len(out.requests) == 2
    silent = [d for d in out.decisions if not d.respond]
    assert [d.reason for d in silent] == [DecisionReason.floor_capped]
    # Each decision is recorded on the copy that delivered it to its agent.
    assert len({d.event_id for d in out.decisions}) == 3


def test_a_redelivered_copy_gets_the_same_ruling_and_counts_nothing() -> None:
    engine, agents = room(2, max_responders=1)
    data = message_data(guild_id=GUILD, channel_id=GENERAL, author=KAI, content="hi", at=T0)
    first, second = copies(data, agents, 0)
    ruled = [engine.handle_event(first), engine.handle_event(second)]
    floor = dict(engine.tables.floor)
    again = [engine.handle_event(first), engine.handle_event(second)]
    assert [o.decisions[0].reason for o in again] == [o.decisions[0].reason for o in ruled]
    assert engine.tables.floor == floor and floor[next(iter(floor))].agent_run == 1


def test_agent_banter_stops_at_the_cap_until_a_person_speaks() -> None:
    engine, agents = room(2, max_agent_run=4)
    answers = len(post(engine, agents, KAI, 0).requests)
    seconds = 1
    # Each answer arrives as the agent's message, and every bot sees it.
    pending = answers
    while pending:
        author = agents[seconds % 2].deployment.bot_id
        out = post(engine, agents, user(author, "agent", bot=True), seconds)
        answers += len(out.requests)
        pending += len(out.requests) - 1
        seconds += 1
    assert answers == 4
    assert DecisionReason.floor_agent_run in {d.reason for d in out.decisions}
    assert len(post(engine, agents, MIA, seconds).requests) == 2


def slash(
    engine: Engine, through: DeployedAgent, invoker: dict[str, Any], name: str, **options: Any
) -> Outputs:
    where = Where(through.deployment.bot_id, GUILD, GENERAL)
    return engine.handle_event(slash_event(where, invoker, name, {k: str(v) for k, v in options.items()}))


def answer(out: Outputs) -> str:
    [response] = [a for a in out.actions if isinstance(a, InteractionResponse)]
    return response.content


def balances(engine: Engine) -> dict[str, int]:
    return dict(engine.tables.economy[EconomyKey(GUILD).encode()].balances)


def test_daily_give_and_no_balance_below_zero() -> None:
    engine, [agent] = room(1)
    assert "claimed 100 coins" in answer(slash(engine, agent, KAI, "daily"))
    assert "already claimed" in answer(slash(engine, agent, KAI, "daily"))
    assert "gave" in answer(slash(engine, agent, KAI, "give", user=MIA["id"], amount=30))
    assert "only 30 coins" in answer(slash(engine, agent, MIA, "give", user=KAI["id"], amount=31))
    assert "at least 1" in answer(slash(engine, agent, KAI, "give", user=MIA["id"], amount=-5))
    assert balances(engine) == {KAI["id"]: 70, MIA["id"]: 30}
    board = answer(slash(engine, agent, KAI, "leaderboard", board="coins"))
    assert board.index(KAI["id"]) < board.index(MIA["id"])
    assert "30 coins" in answer(slash(engine, agent, MIA, "balance"))


def test_a_redelivered_give_changes_nothing() -> None:
    engine, [agent] = room(1)
    slash(engine, agent, KAI, "daily")
    made = slash_event(
        Where(agent.deployment.bot_id, GUILD, GENERAL), KAI, "give", {"user": MIA["id"], "amount": "40"}
    )
    engine.handle_event(made)
    engine.handle_event(made)
    assert balances(engine) == {KAI["id"]: 60, MIA["id"]: 40}


def test_a_tip_moves_coins_to_the_agent_warms_it_and_it_says_thanks() -> None:
    engine, [banker, tipped] = room(2)
    slash(engine, banker, KAI, "daily")
    out = slash(engine, banker, KAI, "tip", agent=tipped.deployment.bot_id, amount=50)
    [thanks] = [a for a in out.actions if isinstance(a, SendMessage)]
    assert thanks.bot_id == tipped.deployment.bot_id and KAI["id"] in thanks.content
    assert balances(engine) == {KAI["id"]: 50, tipped.deployment.bot_id: 50}
    relationship = engine.tables.relationships[
        RelationshipKey(GUILD, tipped.deployment.deployment_id, KAI["id"]).encode()
    ]
    assert relationship.affinity > 50
    assert "not an agent" in answer(slash(engine, banker, KAI, "tip", agent=MIA["id"], amount=5))


def test_wallets_refuse_what_would_take_them_past_a_changelog_record_and_forget_old_claims() -> None:
    """The guild's wallets are one table value: 13,600 members who claimed today fill it. Claims from before
    yesterday refuse nothing any more and are dropped; yesterday's stay for a claim that arrives late."""
    engine, [agent] = room(1)
    today, key = T0.date(), EconomyKey(GUILD).encode()
    members = [str(9 * 10**17 + n) for n in range(13_600)]
    engine.tables.economy[key] = Wallets(
        balances=dict.fromkeys(members, 100),
        last_daily={**dict.fromkeys(members, today), MIA["id"]: today - timedelta(days=1)},
    )
    assert answer(slash(engine, agent, KAI, "daily")) == FULL.format(currency="coins")
    assert answer(
        slash(engine, agent, user(members[0], "m"), "give", user=KAI["id"], amount=5)
    ) == FULL.format(currency="coins")
    assert KAI["id"] not in balances(engine)
    engine.tables.economy[key] = Wallets(
        balances={MIA["id"]: 100},
        last_daily={m: today - timedelta(days=2) for m in members} | {MIA["id"]: today - timedelta(days=1)},
    )
    assert "claimed 100 coins" in answer(slash(engine, agent, KAI, "daily"))
    wallets = engine.tables.economy[key]
    assert wallets.last_daily == {MIA["id"]: today - timedelta(days=1), KAI["id"]: today}
    assert len(wallets.model_dump_json().encode()) <= TABLE_VALUE_MAX_BYTES
