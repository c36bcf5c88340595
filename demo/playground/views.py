"""What the playground's page reads: the JSON bodies of its HTTP endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from models.agent import AgentConfig
from models.decisions import DecisionReason, Priority
from models.memory import RecalledNote
from models.state import MoodState


class View(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChannelView(View):
    id: str
    name: str
    voice: bool = False
    topic: str = ""


class PersonView(View):
    id: str
    name: str
    bot: bool = False
    in_voice: bool = False


class GuildView(View):
    id: str
    name: str
    channels: list[ChannelView]
    members: list[PersonView]


class AgentView(View):
    deployment_id: UUID
    agent_id: UUID
    bot_id: str
    guild_id: str
    name: str
    config: AgentConfig
    # Demo agents are edited through the configuration API; a followed deployment is read-only.
    editable: bool


class AiView(View):
    # No model endpoint: AI agents answer through the offline persona responder.
    offline: bool
    description: str


class SessionView(View):
    mode: Literal["demo", "follow"]
    ai: AiView
    guild: GuildView | None = None
    you: PersonView | None = None
    agents: list[AgentView]


class EmbedView(View):
    title: str = ""
    description: str = ""


class AnswerView(View):
    """Which path wrote an AI reply: a model (which one, on which endpoint) or the offline persona
    responder (and why)."""

    fallback: bool
    model: str
    endpoint: str = ""
    reason: str | None = None


class MessageView(View):
    id: str
    channel_id: str
    author_id: str
    author_name: str
    bot: bool = False
    content: str = ""
    embeds: list[EmbedView] = Field(default_factory=list)
    at: datetime
    # The slash command a response answers ("/play lofi"), shown above it as Discord does.
    command: str | None = None
    # Seen only by the person who ran the command.
    ephemeral: bool = False
    mentions_you: bool = False
    # The name of the author of the message this one replies to.
    replying_to: str | None = None
    # For an AI reply: the model or the persona responder that wrote it.
    answered_by: AnswerView | None = None


class ComposeRequest(View):
    content: str = Field(min_length=1, max_length=2000)
    # The bot a slash command goes to; default: the first agent that has the command.
    bot_id: str | None = None


class ComposeResult(View):
    kind: Literal["message", "command"]
    message_id: str | None = None
    bot_id: str | None = None


class DecisionView(View):
    at: datetime
    deployment_id: UUID
    respond: bool
    reason: DecisionReason
    priority: Priority | None = None
    channel_id: str | None = None
    channel_name: str = ""
    author_id: str | None = None
    author_name: str = ""
    message_id: str | None = None


class RelationshipView(View):
    user_id: str
    name: str
    affinity: int
    interactions: int


class AgentLive(View):
    deployment_id: UUID
    # "online" / "offline" from the emulator's sessions; "unknown" when following a real deployment.
    presence: str = "unknown"
    status_text: str = ""
    mood: MoodState | None = None
    # With the playground's person in the demo; None until the agent has talked with them.
    affinity: RelationshipView | None = None
    relationships: list[RelationshipView] = Field(default_factory=list)
    decisions: int = 0
    replies: int = 0
    ai_calls: int = 0
    ai_fallbacks: int = 0
    # What the agent recalled from long-term memory for its latest AI reply, best first.
    recalled: list[RecalledNote] = Field(default_factory=list)


class CountersView(View):
    events_per_s: float = 0.0
    events: int = 0
    decisions: int = 0
    replies: int = 0
    ai_calls: int = 0
    ai_fallbacks: int = 0


class ModerationView(View):
    at: datetime
    deployment_id: UUID
    user_id: str
    user_name: str
    source: str
    rule: str
    actions: list[str]
    reason: str = ""
    channel_id: str | None = None


class ProcessView(View):
    name: str
    running: bool
    pid: int
    restarts: int
    log: str


class LiveView(View):
    counters: CountersView
    agents: list[AgentLive]
    decisions: list[DecisionView]
    moderation: list[ModerationView]
    processes: list[ProcessView] = Field(default_factory=list)
