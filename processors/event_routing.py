"""Which deployments an event concerns.

An event reaches the active deployments of the bot that received it, in its guild, or for a direct message
the deployments that accept DMs. Whether the deployment may speak in the channel is a separate question:
auto-moderation guards every channel of the guild, commands, leveling and conversation only the allowed ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.deployments import DeployedAgent, DeploymentStatus, RoutingRecord
from models.events import EventEnvelope
from models.processor_state import GuildDirectory

DEFAULT_CONTEXT_WINDOW = 50


@dataclass(frozen=True)
class Route:
    deployed: DeployedAgent
    # The deployment may speak in the event's channel (commands, leveling, conversation).
    in_channel: bool


def channel_allowed(deployed: DeployedAgent, channel_id: str, directory: GuildDirectory | None) -> bool:
    """The deployment may act in the channel, its name resolved through the guild's directory."""
    name = directory.channel_names.get(channel_id) if directory is not None else None
    return deployed.channel_allowed(channel_id, name)


def routes_for(
    record: RoutingRecord | None, envelope: EventEnvelope, directory: GuildDirectory | None
) -> list[Route]:
    if record is None:
        return []
    routes = []
    for deployed in record.deployments:
        deployment = deployed.deployment
        if deployment.bot_id != envelope.bot_id or deployment.status is not DeploymentStatus.active:
            continue
        if envelope.guild_id is None:
            if deployed.accepts_dms:
                routes.append(Route(deployed, in_channel=True))
            continue
        if deployment.guild_id != envelope.guild_id:
            continue
        in_channel = envelope.channel_id is not None and channel_allowed(
            deployed, envelope.channel_id, directory
        )
        routes.append(Route(deployed, in_channel))
    return routes


def context_window(record: RoutingRecord | None) -> int:
    """Messages kept per channel: the largest window among the key's AI agents."""
    windows = [
        d.agent.ai_config.context_window
        for d in (record.deployments if record is not None else [])
        if d.agent.ai_config is not None and d.deployment.status is DeploymentStatus.active
    ]
    return max(windows, default=DEFAULT_CONTEXT_WINDOW)


def find_deployment(record: RoutingRecord | None, deployment_id: str) -> DeployedAgent | None:
    if record is None:
        return None
    return next((d for d in record.deployments if str(d.deployment.deployment_id) == deployment_id), None)


def newer(current: RoutingRecord | None, incoming: RoutingRecord) -> bool:
    """Configuration is applied in version order; a redelivered or older record changes nothing."""
    return current is None or incoming.version > current.version


def guild_agents(record: RoutingRecord | None, guild_id: str | None) -> list[DeployedAgent]:
    """The guild's active deployments, whichever bot speaks for them."""
    if record is None or guild_id is None:
        return []
    return [
        d
        for d in record.deployments
        if d.deployment.guild_id == guild_id and d.deployment.status is DeploymentStatus.active
    ]


def floor_agents(
    record: RoutingRecord | None, guild_id: str, channel_id: str, directory: GuildDirectory | None
) -> list[DeployedAgent]:
    """The guild's active AI agents that may speak in the channel: the agents sharing its floor."""
    return [
        d
        for d in guild_agents(record, guild_id)
        if d.agent.ai_enabled and channel_allowed(d, channel_id, directory)
    ]
