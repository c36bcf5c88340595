"""Reports: a person reacts with REPORT_EMOJI to an agent's message, and the agent's owner hears of it.

Every bot in the channel receives the reaction; only the copy delivered to the bot whose message it is acts,
so one report makes one notification. Its id derives from (message, reporter): a redelivered reaction, or
the same person reacting again after removing it, reports nothing new.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from models.common import Snowflake
from models.deployments import DeployedAgent, RoutingRecord
from models.operations import OwnerNotification
from processors.ids import stable_id

# The one documented report emoji. Discord sends "⚠️" with or without the variation selector.
REPORT_EMOJI = "\u26a0"
_VARIATION_SELECTOR = "\ufe0f"


class _Emoji(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str | None = None


class ReactionAdd(BaseModel):
    """The fields of MESSAGE_REACTION_ADD a report needs."""

    model_config = ConfigDict(extra="ignore")
    user_id: Snowflake
    channel_id: Snowflake
    message_id: Snowflake
    guild_id: Snowflake | None = None
    # Discord names the reacted message's author on additions only.
    message_author_id: Snowflake | None = None
    emoji: _Emoji


def message_link(guild_id: str | None, channel_id: str, message_id: str) -> str:
    return f"https://discord.com/channels/{guild_id or '@me'}/{channel_id}/{message_id}"


def report_of(
    reaction: ReactionAdd, receiving_bot: str, record: RoutingRecord | None
) -> OwnerNotification | None:
    """The owner notification a reaction makes, or None when it is no report of this bot's message."""
    if (reaction.emoji.name or "").replace(_VARIATION_SELECTOR, "") != REPORT_EMOJI:
        return None
    if reaction.message_author_id != receiving_bot or reaction.user_id == receiving_bot:
        return None
    deployed = _deployment_of(record, receiving_bot)
    if deployed is None:
        return None
    link = message_link(reaction.guild_id, reaction.channel_id, reaction.message_id)
    deployment = deployed.deployment
    return OwnerNotification(
        notification_id=stable_id(deployment.deployment_id, reaction.message_id, reaction.user_id, "report"),
        owner_id=deployment.owner_id,
        kind="message_reported",
        message=f"User {reaction.user_id} reported a message of {deployed.agent.name[:40]}: {link}",
        deployment_id=deployment.deployment_id,
    )


def _deployment_of(record: RoutingRecord | None, bot_id: str) -> DeployedAgent | None:
    if record is None:
        return None
    return next((d for d in record.deployments if d.deployment.bot_id == bot_id), None)
