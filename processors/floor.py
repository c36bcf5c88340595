"""The floor manager: which of a channel's agents answer one message.

Each agent first decides alone (processors/decide.py); the floor then grants at most M of those that want to
answer, ranked by addressed-ness (mentioned or replied to), interest match, affinity with the author and
extraversion, with a hash of (message, deployment) breaking ties so no agent is always first. Agents answer
each other (banter) within two channel limits: K agent messages in a row without a person, and a budget of
agent-to-agent answers per hour. Answers are counted when granted, not when they arrive, so replies still
being generated count too and the caps hold however the replies interleave. An agent's own cooldown
silences its unprompted answers for a while after it answered. Every agent kept silent gets its decision with
the floor's reason.

The ruling is remembered by message id: every bot in the guild delivers its own copy of a message, and a
redelivered event must not count twice, so each copy gets the first ruling. Pure: the same state and
candidates give the same ruling, which keeps replay deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from models.agent import MAX_FLOOR_COOLDOWN_S, FloorConfig
from models.decisions import Decision, DecisionReason
from models.processor_state import FLOOR_RULINGS, FloorRuling, FloorState
from processors.ids import stable_id

BANTER_WINDOW = timedelta(hours=1)
ADDRESSED = frozenset({DecisionReason.mentioned, DecisionReason.replied_to})


@dataclass(frozen=True)
class Candidate:
    """One agent of the channel: what it decided alone and what ranks it."""

    decision: Decision
    # Affinity 0-100 with the author (50 for a stranger).
    affinity: int
    extraversion: int
    config: FloorConfig

    @property
    def deployment_id(self) -> UUID:
        return self.decision.deployment_id

    @property
    def addressed(self) -> bool:
        return self.decision.reason in ADDRESSED


@dataclass(frozen=True)
class ChannelLimits:
    max_responders: int
    max_agent_run: int
    banter_per_hour: int


def channel_limits(configs: list[FloorConfig]) -> ChannelLimits:
    """The strictest limits among the channel's agents (the author's too, when an agent wrote the message)."""
    configs = configs or [FloorConfig()]
    return ChannelLimits(
        max_responders=min(c.max_responders for c in configs),
        max_agent_run=min(c.max_agent_run for c in configs),
        banter_per_hour=min(c.banter_per_hour for c in configs),
    )


def ruling_for(state: FloorState | None, message_id: str) -> FloorRuling | None:
    if state is None:
        return None
    return next((r for r in state.rulings if r.message_id == message_id), None)


def _rank(message_id: str, candidate: Candidate) -> tuple[bool, bool, int, int, str]:
    return (
        candidate.addressed,
        candidate.decision.reason is DecisionReason.interest_match,
        candidate.affinity,
        candidate.extraversion,
        stable_id(message_id, candidate.deployment_id),
    )


def _silenced(decision: Decision, reason: DecisionReason) -> Decision:
    return decision.model_copy(update={"respond": False, "reason": reason, "priority": None})


def rule_floor(
    state: FloorState | None,
    message_id: str,
    by_person: bool,
    candidates: list[Candidate],
    limits: ChannelLimits,
    at: datetime,
) -> tuple[FloorRuling, FloorState]:
    """The ruling on one message and the channel's floor after it. `by_person`: a person wrote the message
    (which ends any run of agent messages); otherwise the message is an agent's, and answers are banter."""
    current = state or FloorState()
    known = ruling_for(current, message_id)
    if known is not None:
        return known, current
    run = 0 if by_person else current.agent_run
    banter = [t for t in current.banter_at if t > at - BANTER_WINDOW]
    # Past the longest cooldown an agent's last answer no longer matters.
    last_answered = {
        d: t for d, t in current.last_answered.items() if at - t < timedelta(seconds=MAX_FLOOR_COOLDOWN_S)
    }
    wanting = sorted(
        (c for c in candidates if c.decision.respond), key=lambda c: _rank(message_id, c), reverse=True
    )
    ruled: dict[UUID, Decision] = {c.deployment_id: c.decision for c in candidates}
    granted = 0
    for candidate in wanting:
        last = last_answered.get(candidate.deployment_id)
        cooldown = timedelta(seconds=candidate.config.cooldown_s)
        reason: DecisionReason | None = None
        if not candidate.addressed and last is not None and at - last < cooldown:
            reason = DecisionReason.floor_cooldown
        elif granted >= limits.max_responders:
            reason = DecisionReason.floor_capped
        elif run + granted >= limits.max_agent_run:
            reason = DecisionReason.floor_agent_run
        elif not by_person and len(banter) + granted >= limits.banter_per_hour:
            reason = DecisionReason.floor_banter_budget
        if reason is not None:
            ruled[candidate.deployment_id] = _silenced(candidate.decision, reason)
            continue
        granted += 1
        last_answered[candidate.deployment_id] = at
    ruling = FloorRuling(message_id=message_id, decisions=list(ruled.values()))
    updated = FloorState(
        agent_run=run + granted,
        banter_at=banter if by_person else [*banter, *([at] * granted)],
        last_answered=last_answered,
        rulings=[*current.rulings, ruling][-FLOOR_RULINGS:],
    )
    return ruling, updated
