"""What the decision engine decided for one event and one deployment, on `agent.decisions`."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from pydantic import Field

from models.common import Payload, Snowflake, utc_now
from models.events import SealedData


class DecisionReason(StrEnum):
    mentioned = "mentioned"
    replied_to = "replied_to"
    interest_match = "interest_match"
    conversation_flow = "conversation_flow"
    random = "random"
    bored = "bored"
    no_trigger = "no_trigger"
    own_message = "own_message"
    other_bot = "other_bot"
    loop_cap = "loop_cap"
    channel_not_allowed = "channel_not_allowed"
    not_a_question = "not_a_question"
    ai_disabled = "ai_disabled"
    # An NSFW-rated character stays silent outside age-restricted channels and in every DM.
    nsfw_channel_not_age_restricted = "nsfw:channel_not_age_restricted"
    nsfw_dm = "nsfw:dm"
    # A routine or story-arc beat the agent acts on by itself; `routine` names it.
    proactive = "proactive"
    # A routine skipped: nobody spoke in its channel lately, or it has no channel to speak in.
    proactive_skipped = "proactive_skipped"
    # The floor manager (processors/floor.py) kept an agent that wanted to answer silent.
    floor_capped = "floor:capped"  # other agents ranked higher took the message's M answers
    floor_cooldown = "floor:cooldown"  # the agent answered unprompted too recently
    floor_agent_run = "floor:agent_run"  # K agent messages in a row without a person
    floor_banter_budget = "floor:banter_budget"  # the channel's agent-to-agent answers for the hour


class Priority(StrEnum):
    high = "high"
    medium = "medium"
    low = "low"


class Decision(Payload):
    event_id: str
    deployment_id: UUID
    agent_id: UUID
    guild_id: Snowflake | None = None
    channel_id: Snowflake | None = None
    message_id: Snowflake | None = None
    # Sealed under their own data key (streams/catalog.py: DECISION_SEALING).
    author_id: Snowflake | None = None
    respond: bool
    reason: DecisionReason
    priority: Priority | None = None
    # The chance the deciding trigger fired with, after personality and affinity modulated the configured one.
    probability: float | None = Field(default=None, ge=0.0, le=1.0)
    # The routine ("morning_greeting") or arc beat ("arc:baking:2") of a proactive decision.
    routine: str | None = Field(default=None, max_length=100)
    decided_at: datetime = Field(default_factory=utc_now)
    sealed: SealedData | None = None

    @property
    def reason_label(self) -> str:
        """The reason as analytics shows it: `proactive:morning_greeting` for a routine's firing."""
        return self.reason.value if self.routine is None else f"{self.reason.value}:{self.routine}"
