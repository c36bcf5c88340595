"""Builders of the models the AI-path tests share."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

from models.agent import AgentConfig
from models.decisions import Priority
from models.discord import DiscordMessage
from models.inference import ChatMessage, InferenceRequest, InferenceResult, ReplyTarget
from models.state import ChannelContext, ContextMessage
from models.tiers import TIERS, Tier

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
BOT_ID = "900"
GUILD_ID = "300"
CHANNEL_ID = "200"


def luna(**overrides: Any) -> AgentConfig:
    data = json.loads((FIXTURES / "luna_seed.json").read_text())
    for dotted, value in overrides.items():
        node = data
        *path, last = dotted.split("__")
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return AgentConfig.model_validate(data)


def discord_message(
    content: str, message_id: str = "1000", author: str = "Bob", author_id: str = "500"
) -> DiscordMessage:
    return DiscordMessage.model_validate(
        {
            "id": message_id,
            "channel_id": CHANNEL_ID,
            "guild_id": GUILD_ID,
            "author": {"id": author_id, "username": author.lower(), "global_name": author},
            "content": content,
        }
    )


def channel(*texts: tuple[str, str]) -> ChannelContext:
    """(author name, text) pairs, oldest first; "Luna" messages are the bot's own."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return ChannelContext(
        channel_id=CHANNEL_ID,
        messages=[
            ContextMessage(
                message_id=str(index + 1),
                author_id=BOT_ID if name == "Luna" else "500",
                author_name=name,
                author_is_bot=name == "Luna",
                content=text,
                at=start + timedelta(minutes=index),
            )
            for index, (name, text) in enumerate(texts)
        ],
    )


def inference_request(
    tier: Tier = Tier.free,
    text: str = "hello there",
    model: str = "test-model",
    cacheable: bool = False,
    owner_id: Any = None,
    request_id: str | None = None,
    author_id: str | None = None,
) -> InferenceRequest:
    return InferenceRequest(
        request_id=request_id or uuid4().hex,
        event_id=uuid4().hex,
        deployment_id=uuid4(),
        agent_id=uuid4(),
        owner_id=owner_id or uuid4(),
        tier=tier,
        lane=TIERS[tier].lane,
        priority=Priority.medium,
        model=model,
        messages=[
            ChatMessage(role="system", content="You are Luna."),
            ChatMessage(role="user", name="Bob", content=f"Bob: {text}"),
        ],
        max_tokens=64,
        cacheable=cacheable,
        target=ReplyTarget(
            bot_id=BOT_ID, guild_id=GUILD_ID, channel_id=CHANNEL_ID, message_id="1000", author_id=author_id
        ),
    )


def inference_result(
    text: str, request_id: str = "req-1", message_id: str | None = "1000"
) -> InferenceResult:
    request = inference_request(request_id=request_id)
    return InferenceResult(
        request_id=request.request_id,
        event_id=request.event_id,
        deployment_id=request.deployment_id,
        agent_id=request.agent_id,
        owner_id=request.owner_id,
        tier=request.tier,
        lane=request.lane,
        target=request.target.model_copy(update={"message_id": message_id}),
        text=text,
        model="test-model",
        prompt_tokens=10,
        completion_tokens=10,
        latency_ms=1.0,
        cost_usd=0.0,
    )
