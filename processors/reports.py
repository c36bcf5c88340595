"""Reports: a person reacts with REPORT_EMOJI to an agent's message, or runs /report, and the agent's owner
(and the operators, who read every owner notification) hears of it.

Every bot in the channel receives the reaction; only the copy delivered to the bot whose message it is acts,
so one report makes one notification. Its id derives from (message, reporter): a redelivered reaction or
command, the same person reacting again after removing it, or reporting by both ways, reports nothing new.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from models.common import SHORT_TEXT_MAX, Snowflake
from models.deployments import DeployedAgent, RoutingRecord
from models.operations import OwnerNotification
from models.state import ChannelContext
from processors.commands import Invocation
from processors.emit import Say
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
    return _report(
        deployed, reaction.guild_id, reaction.channel_id, reaction.message_id, reaction.user_id, ""
    )


def report_command(
    invocation: Invocation, deployed: DeployedAgent, context: ChannelContext | None
) -> tuple[Say, OwnerNotification | None]:
    """/report [message] <reason>: the answer to the reporter (seen by them alone) and the notification.
    Without a message it reports the agent's last message in the channel's context; a message the context
    shows another author wrote is refused (a report names this agent's messages only)."""
    bot_id = deployed.deployment.bot_id
    held = context.messages if context is not None else []
    named = invocation.text("message")
    if named:
        author = next((m.author_id for m in held if m.message_id == named), bot_id)
        if author != bot_id:
            return Say(
                "That message is not mine to report; report it to the server's moderators.", ephemeral=True
            ), None
        message_id = named
    else:
        mine = [m.message_id for m in held if m.author_id == bot_id]
        if not mine:
            return Say(
                "I have no recent message here: name the one to report (its link or id).", ephemeral=True
            ), None
        message_id = mine[-1]
    reason = invocation.text("reason")
    report = _report(
        deployed, invocation.guild_id, invocation.channel_id, message_id, invocation.user.id, reason
    )
    return Say(
        "Thank you: your report was sent to my owner and the platform's operators.", ephemeral=True
    ), report


def _report(
    deployed: DeployedAgent,
    guild_id: str | None,
    channel_id: str,
    message_id: str,
    reporter_id: str,
    reason: str,
) -> OwnerNotification:
    link = message_link(guild_id, channel_id, message_id)
    deployment = deployed.deployment
    said = f"User {reporter_id} reported a message of {deployed.agent.name[:40]}: {link}"
    # A notification is short: the reason is cut to what fits after the link.
    said = f"{said} because: {reason}"[:SHORT_TEXT_MAX] if reason else said
    return OwnerNotification(
        notification_id=stable_id(deployment.deployment_id, message_id, reporter_id, "report"),
        owner_id=deployment.owner_id,
        kind="message_reported",
        message=said,
        deployment_id=deployment.deployment_id,
        about_user_id=reporter_id,
    )


def _deployment_of(record: RoutingRecord | None, bot_id: str) -> DeployedAgent | None:
    if record is None:
        return None
    return next((d for d in record.deployments if d.deployment.bot_id == bot_id), None)
