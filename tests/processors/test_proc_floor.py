"""The floor manager as a pure function: ranking, the caps, cooldowns, one ruling per message, and a property
test over random event sequences showing no sequence exceeds the caps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from models.agent import FloorConfig
from models.decisions import Decision, DecisionReason, Priority
from models.processor_state import FLOOR_RULINGS, FloorRuling, FloorState
from processors.floor import BANTER_WINDOW, Candidate, channel_limits, rule_floor
from tests.processors.factories import T0

AGENTS = [UUID(int=n) for n in range(1, 6)]
PRIORITY = {
    DecisionReason.mentioned: Priority.high,
    DecisionReason.replied_to: Priority.high,
    DecisionReason.interest_match: Priority.medium,
    DecisionReason.conversation_flow: Priority.medium,
    DecisionReason.random: Priority.low,
}


def wants(deployment_id: UUID, reason: DecisionReason | None, message_id: str = "1") -> Decision:
    """The agent's own decision: answer for `reason`, or stay silent (None)."""
    return Decision(
        event_id=f"evt-{message_id}",
        deployment_id=deployment_id,
        agent_id=deployment_id,
        guild_id="10",
        channel_id="20",
        message_id=message_id,
        author_id="30",
        respond=reason is not None,
        reason=reason or DecisionReason.no_trigger,
        priority=PRIORITY[reason] if reason is not None else None,
    )


def candidate(
    deployment_id: UUID,
    reason: DecisionReason | None,
    *,
    affinity: int = 50,
    extraversion: int = 50,
    message_id: str = "1",
    **config: int,
) -> Candidate:
    return Candidate(wants(deployment_id, reason, message_id), affinity, extraversion, FloorConfig(**config))


def rule(
    state: FloorState | None, message_id: str, by_person: bool, candidates: list[Candidate], at: datetime
) -> tuple[FloorRuling, FloorState]:
    """The ruling over a channel whose agents are the candidates."""
    limits = channel_limits([c.config for c in candidates])
    return rule_floor(state, message_id, by_person, candidates, limits, at)


def by_agent(decisions: list[Decision]) -> dict[UUID, Decision]:
    return {d.deployment_id: d for d in decisions}


def test_addressed_agents_come_first_then_interest_affinity_and_extraversion() -> None:
    a, b, c, d = AGENTS[:4]
    ruling, _ = rule(
        None,
        "1",
        True,
        [
            candidate(a, DecisionReason.random, extraversion=100),
            candidate(b, DecisionReason.mentioned),
            candidate(c, DecisionReason.random, affinity=90),
            candidate(d, DecisionReason.interest_match),
        ],
        T0,
    )
    decisions = by_agent(ruling.decisions)
    assert {x for x, decision in decisions.items() if decision.respond} == {b, d}
    assert decisions[a].reason is decisions[c].reason is DecisionReason.floor_capped
    assert decisions[a].priority is None and not decisions[a].respond

    # The channel's strictest setting wins: one agent limits the floor to one answer.
    ruling, _ = rule(
        None,
        "2",
        True,
        [
            candidate(a, DecisionReason.random, extraversion=100, message_id="2", max_responders=1),
            candidate(c, DecisionReason.random, affinity=90, message_id="2"),
        ],
        T0,
    )
    assert [d.deployment_id for d in ruling.decisions if d.respond] == [c]


def test_an_agent_that_stays_silent_keeps_its_own_reason() -> None:
    ruling, state = rule(None, "1", True, [candidate(AGENTS[0], None)], T0)
    assert ruling.decisions[0].reason is DecisionReason.no_trigger
    assert state.agent_run == 0


def test_every_copy_and_redelivery_of_a_message_gets_the_first_ruling() -> None:
    a, b = AGENTS[:2]
    first, state = rule(
        None, "1", True, [candidate(a, DecisionReason.random), candidate(b, DecisionReason.random)], T0
    )
    # Another bot's copy: the candidates' dice came out differently, the ruling stands and counts once.
    again, after = rule(state, "1", True, [candidate(a, None), candidate(b, DecisionReason.mentioned)], T0)
    assert again == first and after == state and state.agent_run == 2


def test_banter_stops_after_k_agent_messages_without_a_person() -> None:
    a, b = AGENTS[:2]
    state: FloorState | None = None
    answers = 0
    for n in range(10):
        by_person = n == 0
        ruling, state = rule(
            state,
            str(n),
            by_person,
            [
                candidate(a, DecisionReason.conversation_flow, message_id=str(n), max_agent_run=5),
                candidate(b, DecisionReason.conversation_flow, message_id=str(n)),
            ],
            T0 + timedelta(seconds=n),
        )
        answers += sum(d.respond for d in ruling.decisions)
        if n >= 3:
            assert {d.reason for d in ruling.decisions} == {DecisionReason.floor_agent_run}
    assert answers == 5
    ruling, state = rule(
        state,
        "99",
        True,
        [candidate(a, DecisionReason.mentioned, message_id="99")],
        T0 + timedelta(minutes=1),
    )
    assert ruling.decisions[0].respond and state.agent_run == 1


def test_the_hourly_banter_budget_refills_as_the_hour_moves_on() -> None:
    a = AGENTS[0]
    state: FloorState | None = None
    at = T0
    granted = []
    for n in range(6):
        at = T0 + timedelta(minutes=10 * n)
        ruling, state = rule(
            state,
            str(n),
            False,
            [candidate(a, DecisionReason.random, message_id=str(n), banter_per_hour=2, max_agent_run=50)],
            at,
        )
        granted.append(ruling.decisions[0].reason)
    budget = DecisionReason.floor_banter_budget
    assert granted == [DecisionReason.random, DecisionReason.random, budget, budget, budget, budget]
    later = at + BANTER_WINDOW
    ruling, _ = rule(
        state, "9", False, [candidate(a, DecisionReason.random, message_id="9", banter_per_hour=2)], later
    )
    assert ruling.decisions[0].respond


def test_a_cooldown_silences_unprompted_answers_but_not_a_mention() -> None:
    a = AGENTS[0]
    _, state = rule(None, "1", True, [candidate(a, DecisionReason.random, cooldown_s=60)], T0)
    soon = T0 + timedelta(seconds=30)
    ruling, _ = rule(state, "2", True, [candidate(a, DecisionReason.random, cooldown_s=60)], soon)
    assert ruling.decisions[0].reason is DecisionReason.floor_cooldown
    ruling, _ = rule(state, "3", True, [candidate(a, DecisionReason.mentioned, cooldown_s=60)], soon)
    assert ruling.decisions[0].respond
    ruling, _ = rule(
        state, "4", True, [candidate(a, DecisionReason.random, cooldown_s=60)], T0 + timedelta(seconds=60)
    )
    assert ruling.decisions[0].respond


# Property ---------------------------------------------------------------------------------------------------

REASONS = [None, *PRIORITY]


@dataclass(frozen=True)
class Step:
    by_person: bool
    seconds_later: int
    reasons: tuple[DecisionReason | None, ...]
    affinities: tuple[int, ...]
    # A copy of the message this many new messages back (another bot's, or a redelivery) instead of a new
    # one, within the rulings a channel remembers.
    copy_of: int | None


steps = st.builds(
    Step,
    by_person=st.booleans(),
    seconds_later=st.integers(min_value=0, max_value=900),
    reasons=st.tuples(*[st.sampled_from(REASONS)] * len(AGENTS)),
    affinities=st.tuples(*[st.integers(min_value=0, max_value=100)] * len(AGENTS)),
    copy_of=st.one_of(st.none(), st.integers(min_value=1, max_value=FLOOR_RULINGS)),
)
configs = st.builds(
    FloorConfig,
    max_responders=st.integers(min_value=1, max_value=4),
    max_agent_run=st.integers(min_value=1, max_value=8),
    banter_per_hour=st.integers(min_value=0, max_value=6),
    cooldown_s=st.integers(min_value=0, max_value=600),
)


@settings(max_examples=10_000, deadline=None)
@given(config=configs, sequence=st.lists(steps, max_size=40))
def test_no_sequence_of_messages_exceeds_the_caps(config: FloorConfig, sequence: list[Step]) -> None:
    state: FloorState | None = None
    at: datetime = T0
    run = 0  # agent answers since a person last spoke
    banter: list[datetime] = []
    last_answer: dict[UUID, datetime] = {}
    rulings: dict[str, list[Decision]] = {}
    for index, step in enumerate(sequence):
        at += timedelta(seconds=step.seconds_later)
        back = step.copy_of
        message_id = list(rulings)[-back] if back is not None and back <= len(rulings) else str(index)
        candidates = [
            Candidate(wants(agent, reason, message_id), affinity, 50, config)
            for agent, reason, affinity in zip(AGENTS, step.reasons, step.affinities, strict=True)
        ]
        ruling, state = rule(state, message_id, step.by_person, candidates, at)
        if message_id in rulings:
            assert ruling.decisions == rulings[message_id]
            continue
        rulings[message_id] = ruling.decisions
        answering = [d for d in ruling.decisions if d.respond]
        assert len(answering) <= config.max_responders
        run = (0 if step.by_person else run) + len(answering)
        assert run <= config.max_agent_run
        if not step.by_person:
            banter.extend([at] * len(answering))
            assert sum(t > at - BANTER_WINDOW for t in banter) <= config.banter_per_hour
        for own, ruled in zip(candidates, ruling.decisions, strict=True):
            if ruled.respond:
                assert ruled == own.decision
                last = last_answer.get(ruled.deployment_id)
                if not own.addressed and last is not None:
                    assert at - last >= timedelta(seconds=config.cooldown_s)
                last_answer[ruled.deployment_id] = at
            elif own.decision.respond:
                assert ruled.reason.value.startswith("floor:")
            else:
                assert ruled == own.decision
