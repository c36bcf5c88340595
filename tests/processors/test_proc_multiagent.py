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
from models.processor_state import Wallet, Wallets
from models.table_keys import EconomyKey, RelationshipKey, WalletKey
from processors.engine import Engine, Outputs, Tables
from processors.erasure import erase_user
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


def wallet_key(user_id: str) -> str:
    return WalletKey(GUILD, user_id).encode()


def balances(engine: Engine) -> dict[str, int]:
    return {WalletKey.parse(key).user_id: held.balance for key, held in engine.tables.wallets.items()}


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


def give(agent: DeployedAgent, giver: dict[str, Any], receiver: str, amount: int) -> EventEnvelope:
    where = Where(agent.deployment.bot_id, GUILD, GENERAL)
    return slash_event(where, giver, "give", {"user": receiver, "amount": str(amount)})


def test_a_redelivered_give_changes_nothing() -> None:
    engine, [agent] = room(1)
    slash(engine, agent, KAI, "daily")
    made = give(agent, KAI, MIA["id"], 40)
    engine.handle_event(made)
    assert not engine.handle_event(made).actions
    assert balances(engine) == {KAI["id"]: 60, MIA["id"]: 40}


def test_a_give_whose_credit_was_not_recorded_is_completed_when_it_comes_again() -> None:
    """The giver's and the receiver's wallets are two changelog records: a worker that stopped between them
    recovers the debit without the credit, and the redelivered give credits the receiver, once."""
    engine, [agent] = room(1)
    slash(engine, agent, KAI, "daily")
    slash(engine, agent, MIA, "daily")
    before = engine.tables.wallets[wallet_key(MIA["id"])]
    made = give(agent, KAI, MIA["id"], 40)
    engine.handle_event(made)
    engine.tables.wallets[wallet_key(MIA["id"])] = before
    assert not engine.handle_event(made).actions
    assert balances(engine) == {KAI["id"]: 60, MIA["id"]: 140}
    engine.handle_event(made)
    assert balances(engine) == {KAI["id"]: 60, MIA["id"]: 140}


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


def test_a_guild_of_any_size_writes_only_the_wallets_a_command_changes() -> None:
    """Every member's wallet is a value of its own: 30,000 members hold coins (past what the guild's one
    value held), a newcomer still claims /daily, and a give writes the giver's and the receiver's wallets."""
    engine, [agent] = room(1)
    members = [str(9 * 10**17 + n) for n in range(30_000)]
    for n, member in enumerate(members):
        engine.tables.wallets[wallet_key(member)] = Wallet(balance=n, last_daily=T0.date())
    assert "claimed 100 coins" in answer(slash(engine, agent, KAI, "daily"))
    written = dict(engine.tables.wallets)
    assert "gave" in answer(slash(engine, agent, KAI, "give", user=members[0], amount=30))
    changed = {key for key, held in engine.tables.wallets.items() if written.get(key) is not held}
    assert changed == {wallet_key(KAI["id"]), wallet_key(members[0])}
    assert all(len(engine.tables.wallets[key].model_dump_json()) < 200 for key in changed)
    board = answer(slash(engine, agent, KAI, "leaderboard", board="coins"))
    assert board.splitlines()[0] == f"1. <@{members[-1]}> — 29999 coins"


def test_the_coins_board_follows_erasures_and_wallets_recovered_after_a_rebalance() -> None:
    engine, [agent] = room(1)
    for member in (KAI, MIA):
        slash(engine, agent, member, "daily")
    slash(engine, agent, KAI, "give", user=MIA["id"], amount=10)
    board = answer(slash(engine, agent, KAI, "leaderboard", board="coins"))
    assert board.index(MIA["id"]) < board.index(KAI["id"])
    assert erase_user(engine.tables, MIA["id"], lambda _: True) == 1
    board = answer(slash(engine, agent, KAI, "leaderboard", board="coins"))
    assert MIA["id"] not in board and KAI["id"] in board
    # Recovered from the changelog when a partition came to this worker: the engine wrote none of it.
    recovered = snowflake()
    engine.tables.wallets[wallet_key(recovered)] = Wallet(balance=500)
    engine.forget_derived()
    board = answer(slash(engine, agent, KAI, "leaderboard", board="coins"))
    assert board.index(recovered) < board.index(KAI["id"])


def test_wallets_held_as_one_guild_value_are_read_and_moved_member_by_member() -> None:
    """A guild whose economy began under the earlier layout, one value for all its wallets: its members keep
    their coins and their /daily, each moves to a wallet of their own at their first change, and an event the
    guild's value applied before the upgrade is not applied again."""
    engine, [agent] = room(1)
    other, applied = snowflake(), slash_event(Where(agent.deployment.bot_id, GUILD, GENERAL), KAI, "daily")
    engine.tables.economy[EconomyKey(GUILD).encode()] = Wallets(
        balances={KAI["id"]: 100, MIA["id"]: 20, other: 60},
        last_daily={KAI["id"]: T0.date()},
        applied=[applied.event_id],
    )
    assert "100 coins" in answer(slash(engine, agent, MIA, "balance", user=KAI["id"]))
    assert not engine.handle_event(applied).actions
    assert "already claimed" in answer(slash(engine, agent, KAI, "daily"))
    assert "gave" in answer(slash(engine, agent, KAI, "give", user=MIA["id"], amount=30))
    assert balances(engine) == {KAI["id"]: 70, MIA["id"]: 50}
    board = answer(slash(engine, agent, KAI, "leaderboard", board="coins")).splitlines()
    assert board == [
        f"1. <@{KAI['id']}> — 70 coins",
        f"2. <@{other}> — 60 coins",
        f"3. <@{MIA['id']}> — 50 coins",
    ]
    assert erase_user(engine.tables, other, lambda _: True) == 1
    assert other not in answer(slash(engine, agent, KAI, "leaderboard", board="coins"))
