"""How an agent appears on Discord: the persona it wears in each guild it is deployed to, and the presence
(status and activity) its mood gives its bot.

A persona update is made when a deployment first appears in a guild's routing record and whenever its
persona changes; its action id derives from the deployment, the record's version and the persona, so a
replayed record asks for nothing the gateway has not already done. Nick and bio travel apart from the
images: an image that cannot be fetched must not keep the name from changing.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.actions import MemberPersonaUpdate, PresenceUpdate
from models.agent import AgentConfig, MoodConfig, MoodDefinition, MoodName
from models.deployments import DeployedAgent, RoutingRecord
from processors.ids import stable_id

# Discord's limit on a member's nickname.
NICK_LIMIT = 32


@dataclass(frozen=True)
class Persona:
    nick: str
    bio: str
    avatar_url: str
    banner_url: str


def persona_of(agent: AgentConfig) -> Persona:
    character = agent.character
    if character is None:
        return Persona(nick=agent.name[:NICK_LIMIT], bio="", avatar_url="", banner_url="")
    return Persona(
        nick=character.name[:NICK_LIMIT],
        bio=character.bio,
        avatar_url=character.avatar_url,
        banner_url=character.banner_url,
    )


def persona_updates(record: RoutingRecord, previous: RoutingRecord | None) -> list[MemberPersonaUpdate]:
    """The updates that dress each deployment of a guild's new routing record in its persona: for
    deployments new to the guild, and for those whose persona changed."""
    worn = {
        str(d.deployment.deployment_id): persona_of(d.agent)
        for d in (previous.deployments if previous is not None else [])
    }
    updates = []
    for deployed in record.deployments:
        if deployed.deployment.guild_id != record.key:
            continue  # a direct-message record: personas are per guild
        persona = persona_of(deployed.agent)
        known = worn.get(str(deployed.deployment.deployment_id))
        if known is None or known.nick != persona.nick or known.bio != persona.bio:
            updates.append(_update(deployed, record.version, "profile", nick=persona.nick, bio=persona.bio))
        images = (persona.avatar_url, persona.banner_url)
        worn_images = (known.avatar_url, known.banner_url) if known is not None else ("", "")
        if images != worn_images:
            updates.append(
                _update(
                    deployed,
                    record.version,
                    "images",
                    avatar_url=persona.avatar_url,
                    banner_url=persona.banner_url,
                )
            )
    return updates


def _update(deployed: DeployedAgent, version: int, part: str, **fields: str) -> MemberPersonaUpdate:
    deployment = deployed.deployment
    return MemberPersonaUpdate(
        action_id=stable_id("persona", deployment.deployment_id, version, part, *fields.values()),
        bot_id=deployment.bot_id,
        guild_id=deployment.guild_id,
        deployment_id=str(deployment.deployment_id),
        **fields,
    )


def presence_of(mood: MoodName, config: MoodConfig) -> tuple[str, str]:
    """(status, activity) while in `mood`."""
    definition = config.moods.get(mood) or MoodDefinition()
    return definition.status, definition.activity


def presence_update(
    deployed: DeployedAgent, mood: MoodName, config: MoodConfig, cause_event_id: str, guild_id: str | None
) -> PresenceUpdate:
    status, activity = presence_of(mood, config)
    deployment = deployed.deployment
    return PresenceUpdate(
        action_id=stable_id(cause_event_id, deployment.deployment_id, "presence"),
        bot_id=deployment.bot_id,
        guild_id=guild_id,
        deployment_id=str(deployment.deployment_id),
        cause_event_id=cause_event_id,
        status=status,
        activity=activity,
    )
