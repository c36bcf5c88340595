"""Builders of realistic Discord dispatch data, envelopes and deployments for the processor tests."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from models.agent import AgentConfig, AgentMode
from models.deployments import DeployedAgent, Deployment, RoutingRecord
from models.events import EventEnvelope
from models.inference import InferenceRequest, InferenceResult
from models.templates import mode_template
from models.tiers import Tier

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)

_ids = itertools.count(1)
_snowflakes = itertools.count(1_200_000_000_000_000_000)


def snowflake() -> str:
    return str(next(_snowflakes))


def luna() -> AgentConfig:
    return AgentConfig.model_validate(json.loads((FIXTURES / "luna_seed.json").read_text()))


def agent_with(mode: AgentMode, **changes: Any) -> AgentConfig:
    data = mode_template(mode).model_dump(mode="json")
    data.update(changes)
    return AgentConfig.model_validate(data)


def chatty(**floor: int) -> AgentConfig:
    """An agent that wants to answer everything, other agents too."""
    behavior = {
        "reply_to_bots": True,
        "max_consecutive_replies": 50,
        "response_triggers": {"random": {"probability": 1.0}},
        "floor": floor,
    }
    return agent_with(
        AgentMode.human_like,
        behavior=behavior,
        enabled_tools=["economy"],
        enabled_commands=["daily", "balance", "give", "tip", "leaderboard"],
    )


def deployed(
    agent: AgentConfig, *, guild_id: str, bot_id: str, tier: Tier = Tier.pro, **deployment: Any
) -> DeployedAgent:
    return DeployedAgent(
        deployment=Deployment(
            deployment_id=deployment.pop("deployment_id", uuid4()),
            agent_id=uuid4(),
            owner_id=deployment.pop("owner_id", UUID(int=7)),
            guild_id=guild_id,
            bot_id=bot_id,
            token_id=uuid4(),
            **deployment,
        ),
        agent=agent,
        owner_tier=tier,
    )


def routing(key: str, *deployments: DeployedAgent, version: int = 1) -> RoutingRecord:
    return RoutingRecord(key=key, deployments=list(deployments), version=version)


def user(user_id: str, name: str = "someone", bot: bool = False) -> dict[str, Any]:
    return {"id": user_id, "username": name, "global_name": name.title(), "discriminator": "0", "bot": bot}


def message_data(
    *,
    guild_id: str | None,
    channel_id: str,
    author: dict[str, Any],
    content: str,
    at: datetime = T0,
    mentions: list[dict[str, Any]] | None = None,
    roles: list[str] | None = None,
    referenced: dict[str, Any] | None = None,
    message_id: str | None = None,
    embeds: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": message_id or snowflake(),
        "type": 0 if referenced is None else 19,
        "channel_id": channel_id,
        "author": author,
        "content": content,
        "timestamp": at.isoformat(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": mentions or [],
        "mention_roles": [],
        "attachments": [],
        "embeds": embeds or [],
        "pinned": False,
        "flags": 0,
    }
    if guild_id is not None:
        data["guild_id"] = guild_id
        data["member"] = {"roles": roles or [], "nick": None, "joined_at": "2025-01-01T00:00:00+00:00"}
    if referenced is not None:
        data["message_reference"] = {"message_id": referenced["id"], "channel_id": channel_id, "type": 0}
        data["referenced_message"] = referenced
    return data


def interaction_data(
    *,
    application_id: str,
    guild_id: str,
    channel_id: str,
    invoker: dict[str, Any],
    name: str,
    options: list[dict[str, Any]] | None = None,
    permissions: int = 0,
) -> dict[str, Any]:
    return {
        "id": snowflake(),
        "application_id": application_id,
        "type": 2,
        "token": f"aW50ZXJhY3Rpb246{next(_ids)}",
        "version": 1,
        "guild_id": guild_id,
        "channel_id": channel_id,
        "locale": "en-US",
        "app_permissions": "2147483647",
        "member": {
            "user": invoker,
            "roles": [],
            "permissions": str(permissions),
            "nick": None,
            "joined_at": "2025-01-01T00:00:00+00:00",
        },
        "data": {"id": snowflake(), "name": name, "type": 1, "options": options or []},
    }


def guild_create(
    guild_id: str, *, owner_id: str, channels: dict[str, str], roles: dict[str, int] | None = None
) -> dict[str, Any]:
    return {
        "id": guild_id,
        "name": "Anime Hangout",
        "owner_id": owner_id,
        "unavailable": False,
        "member_count": 42,
        "channels": [
            {"id": channel_id, "name": name, "type": 0, "position": index}
            for index, (channel_id, name) in enumerate(channels.items())
        ],
        "roles": [
            {"id": role_id, "name": f"role{index}", "permissions": str(bits), "position": index}
            for index, (role_id, bits) in enumerate({guild_id: 0, **(roles or {})}.items())
        ],
        "voice_states": [],
        "members": [],
    }


def envelope(
    event_type: str,
    data: dict[str, Any],
    *,
    bot_id: str,
    guild_id: str | None,
    channel_id: str | None = None,
    sequence: int | None = None,
    at: datetime = T0,
) -> EventEnvelope:
    number = next(_ids)
    return EventEnvelope(
        event_id=f"evt-{uuid4().hex[:12]}-{number}",
        bot_id=bot_id,
        guild_id=guild_id,
        channel_id=channel_id,
        type=event_type,
        sequence=sequence if sequence is not None else number,
        received_at=at + timedelta(milliseconds=5),
        data=data,
    )


@dataclass(frozen=True)
class Where:
    """A guild channel, as one bot's gateway sees it."""

    bot_id: str
    guild_id: str
    channel_id: str


def message_event(where: Where, author: dict[str, Any], content: str, at: datetime = T0) -> EventEnvelope:
    data = message_data(
        guild_id=where.guild_id, channel_id=where.channel_id, author=author, content=content, at=at
    )
    return envelope(
        "MESSAGE_CREATE",
        data,
        bot_id=where.bot_id,
        guild_id=where.guild_id,
        channel_id=where.channel_id,
        at=at,
    )


def slash_event(
    where: Where,
    invoker: dict[str, Any],
    name: str,
    options: dict[str, str] | None = None,
    *,
    permissions: int = 0,
    at: datetime = T0,
) -> EventEnvelope:
    """`/name` with string options (Discord's option type 3)."""
    data = interaction_data(
        application_id=where.bot_id,
        guild_id=where.guild_id,
        channel_id=where.channel_id,
        invoker=invoker,
        name=name,
        options=[{"name": key, "type": 3, "value": value} for key, value in (options or {}).items()],
        permissions=permissions,
    )
    return envelope(
        "INTERACTION_CREATE",
        data,
        bot_id=where.bot_id,
        guild_id=where.guild_id,
        channel_id=where.channel_id,
        at=at,
    )


def result_of(request: InferenceRequest, text: str) -> InferenceResult:
    """The model's answer to `request`, a second after it was made."""
    return InferenceResult(
        request_id=request.request_id,
        event_id=request.event_id,
        deployment_id=request.deployment_id,
        agent_id=request.agent_id,
        owner_id=request.owner_id,
        tier=request.tier,
        lane=request.lane,
        target=request.target,
        text=text,
        model="gpt-4-turbo",
        prompt_tokens=10,
        completion_tokens=5,
        latency_ms=300,
        cost_usd=0.001,
        completed_at=T0 + timedelta(seconds=1),
    )
