"""The console's sandbox: an owner talks to an agent before deploying it, on the platform's own path.

The agent is deployed, in memory only, into a sandbox guild the owner owns, with one text channel (named
as the agent's first channel, so its channel settings let it speak there). The processors' Engine, with
tables of its own, takes the sandbox's short history and then the new message as MESSAGE_CREATE events,
exactly as a processor worker takes Discord's: commands, safety replies, the decision (would it answer,
and why) and the inference request with its prompt. `api/routes/sandbox.py` then makes the inference
worker's call (inference.worker.complete_within_quota) and gives the result back to the Engine, which
composes the reply as the reply processor does. Nothing is published and nothing is stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from api.schemas import Agent, SandboxAuthor, SandboxMessage
from models.actions import Action, Reply, SendMessage
from models.deployments import DeployedAgent, Deployment, RoutingRecord
from models.events import EventEnvelope
from models.tiers import Tier
from processors.engine import Engine, Outputs, Tables
from processors.ids import stable_id
from processors.prompt import PromptFit

# The sandbox's Discord: ids no real guild, channel or user has (Discord's snowflakes start in 2015).
SANDBOX_GUILD = "1000000000000001"
SANDBOX_CHANNEL = "1000000000000002"
SANDBOX_BOT = "1000000000000003"
# The owner, as the sandbox guild's owner: every command's permission check passes, as in their own server.
SANDBOX_OWNER = "1000000000000004"
SANDBOX_CHANNEL_NAME = "sandbox"
# History turns are this far apart: a conversation, as conversation flow sees one.
TURN_GAP = timedelta(seconds=20)


@dataclass(frozen=True)
class SandboxTurn:
    """What the Engine made of the new message."""

    engine: Engine
    # The routing key the sandbox deployment lives under (the guild's).
    key: str
    outputs: Outputs
    deployment_id: UUID


def _in_memory_tables() -> Tables:
    return Tables(**{table.name: {} for table in fields(Tables)})


def sandbox_channel(agent: Agent) -> tuple[str, str]:
    """(id, name) of the sandbox channel: the agent's first configured text channel, so that its channel
    settings allow it there, else #sandbox (no channels configured: every channel is allowed)."""
    wanted = agent.config.channels.text_channels
    if not wanted:
        return SANDBOX_CHANNEL, SANDBOX_CHANNEL_NAME
    first = wanted[0]
    return (first, SANDBOX_CHANNEL_NAME) if first.isdigit() else (SANDBOX_CHANNEL, first)


def sandbox_record(agent: Agent, tier: Tier, channel_id: str, at: datetime) -> RoutingRecord:
    deployment = Deployment(
        deployment_id=UUID(stable_id("sandbox", agent.agent_id)),
        agent_id=agent.agent_id,
        owner_id=agent.owner_id,
        guild_id=SANDBOX_GUILD,
        bot_id=SANDBOX_BOT,
        # The sandbox has no bot and so no token: the nil id names none, and nothing on the sandbox's path
        # (the engine's decision and the model call) reads a deployment's token.
        token_id=UUID(int=0),
        text_channels=[channel_id],
        deployed_at=at,
        message_content=True,
    )
    deployed = DeployedAgent(deployment=deployment, agent=agent.config, owner_tier=tier)
    return RoutingRecord(key=SANDBOX_GUILD, deployments=[deployed], version=1, updated_at=at)


def _envelope(event_id: str, kind: str, data: dict[str, Any], at: datetime) -> EventEnvelope:
    return EventEnvelope(
        event_id=event_id,
        bot_id=SANDBOX_BOT,
        guild_id=SANDBOX_GUILD,
        channel_id=data.get("channel_id"),
        type=kind,
        sequence=0,
        received_at=at,
        data=data,
    )


def _guild_created(channel_id: str, channel_name: str, at: datetime) -> EventEnvelope:
    guild = {
        "id": SANDBOX_GUILD,
        "name": "Sandbox",
        "owner_id": SANDBOX_OWNER,
        "channels": [{"id": channel_id, "name": channel_name, "type": 0}],
        "members": [{"user": {"id": SANDBOX_BOT, "bot": True}, "roles": []}],
    }
    return _envelope(f"sandbox-guild-{channel_id}", "GUILD_CREATE", guild, at)


def _message(
    index: int,
    author: SandboxAuthor,
    content: str,
    agent: Agent,
    channel_id: str,
    at: datetime,
    mention: bool,
) -> EventEnvelope:
    by_agent = author is SandboxAuthor.agent
    user = (
        {"id": SANDBOX_BOT, "username": agent.name, "bot": True}
        if by_agent
        else {"id": SANDBOX_OWNER, "username": "you"}
    )
    if mention and not by_agent:
        content = f"<@{SANDBOX_BOT}> {content}"
    message_id = str(int(SANDBOX_CHANNEL) + 1000 + index)
    data = {
        "id": message_id,
        "channel_id": channel_id,
        "guild_id": SANDBOX_GUILD,
        "author": user,
        "content": content,
        "timestamp": at.isoformat(),
        "mentions": [{"id": SANDBOX_BOT, "username": agent.name, "bot": True}]
        if mention and not by_agent
        else [],
    }
    # Each message of each exchange has its own event id: the decisions' dice differ as they would live.
    return _envelope(stable_id("sandbox", agent.agent_id, index, content, at), "MESSAGE_CREATE", data, at)


def sandbox_turn(
    agent: Agent, tier: Tier, message: SandboxMessage, fit: PromptFit, at: datetime
) -> SandboxTurn:
    """The history replayed into a fresh Engine (what it leaves behind: the channel's context, the mood,
    what the agent knows of the owner), then the new message's outputs."""
    channel_id, channel_name = sandbox_channel(agent)
    start = at - TURN_GAP * (len(message.history) + 1)
    record = sandbox_record(agent, tier, channel_id, start)
    engine = Engine(_in_memory_tables(), fit=fit)
    engine.apply_routing(record)
    engine.handle_event(_guild_created(channel_id, channel_name, start))
    for index, turn in enumerate(message.history):
        when = start + TURN_GAP * (index + 1)
        # What the agent did with earlier messages is already in the history: only the state counts.
        engine.handle_event(
            _message(index, turn.author, turn.content, agent, channel_id, when, message.mention)
        )
    final = _message(
        len(message.history), SandboxAuthor.owner, message.content, agent, channel_id, at, message.mention
    )
    return SandboxTurn(
        engine, record.key, engine.handle_event(final), record.deployments[0].deployment.deployment_id
    )


def said(actions: Iterable[Action]) -> list[str]:
    """The messages the actions send to the channel, as text (an embed as its title and text)."""
    shown = []
    for action in actions:
        if isinstance(action, SendMessage | Reply):
            parts = [action.content]
            if action.embed is not None:
                parts += [action.embed.title, action.embed.description]
            text = "\n".join(part for part in parts if part)
            if text:
                shown.append(text)
    return shown
