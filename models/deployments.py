"""Deployments: an agent, in a guild, through a bot token; and the record processors route by."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from pydantic import Field

from models.agent import AgentConfig
from models.common import Payload, Snowflake, Strict, utc_now
from models.tiers import Tier


class DeploymentStatus(StrEnum):
    active = "active"
    paused = "paused"
    error = "error"


class Deployment(Strict):
    deployment_id: UUID
    agent_id: UUID
    owner_id: UUID
    guild_id: Snowflake
    # Which bot the deployment speaks through: the Discord user id of the bot and the vault's token id.
    bot_id: Snowflake
    token_id: UUID
    # Channel ids; empty means every channel allowed by the agent's own channel settings.
    text_channels: list[Snowflake] = Field(default_factory=list, max_length=500)
    voice_channels: list[Snowflake] = Field(default_factory=list, max_length=500)
    dm_enabled: bool = False
    status: DeploymentStatus = DeploymentStatus.active
    deployed_at: datetime = Field(default_factory=utc_now)
    # Whether Discord grants the bot the MESSAGE_CONTENT intent (None: no runner connected it yet), and
    # the agent's features that need it while it is missing (models/agent.py: message_content_features).
    message_content: bool | None = None
    needs_message_content: list[str] = Field(default_factory=list, max_length=20)


class DeployedAgent(Strict):
    deployment: Deployment
    agent: AgentConfig
    owner_tier: Tier


class RoutingRecord(Payload):
    """On the compacted `agent.deployments`: every deployment under one key (a guild, or `dm:<bot>`).

    A compacted topic keeps one value per key, so the value is the whole set; an empty list removes
    them all. Keyed like `discord.events`, so a guild's configuration is on the guild's partition.
    """

    key: str = Field(min_length=1, max_length=100)
    deployments: list[DeployedAgent] = Field(default_factory=list, max_length=1000)
    # Monotonic per key; consumers ignore a record older than the one they hold.
    version: int = Field(ge=0)
    updated_at: datetime = Field(default_factory=utc_now)
