"""Agents that speak: whether an agent talks in voice, which voice it speaks with, and its text made fit to
be said aloud."""

from __future__ import annotations

import hashlib
import re

from models.actions import VoiceJoin
from models.deployments import DeployedAgent, DeploymentStatus, RoutingRecord
from models.discord import DiscordMessage, DiscordUser, Mention
from models.events import VoiceTranscript
from models.processor_state import GuildDirectory
from models.tiers import TIERS, Feature
from models.tools import Tool
from processors.emit import Emitter
from processors.routines import voice_channel

# Discord markup read aloud is noise: mentions and custom emoji (<@id>, <#id>, <@&id>, <:name:id>),
# links, code fences and the characters of bold, italics, strikes, spoilers, quotes and headings.
_MARKUP = (
    (re.compile(r"```.*?```", re.DOTALL), " "),
    (re.compile(r"<a?:(\w+):\d+>"), r"\1"),
    (re.compile(r"<(@[!&]?|#)\d+>"), " "),
    (re.compile(r"\[([^\]]+)\]\([^)]+\)"), r"\1"),
    (re.compile(r"https?://\S+"), " "),
    (re.compile(r"^\s{0,3}(#{1,6}|>+|[-*+]\s)\s*", re.MULTILINE), ""),
    (re.compile(r"[*_~`|]+"), ""),
    (re.compile(r"\s+"), " "),
)


def spoken_text(text: str) -> str:
    """The words of a chat message, without its Discord markup; empty when nothing is left to say."""
    for pattern, replacement in _MARKUP:
        text = pattern.sub(replacement, text)
    return text.strip()


def speaks_in_voice(deployed: DeployedAgent) -> bool:
    """An AI agent with the voice_tts tool, on a tier that includes voice, says its replies in voice."""
    agent = deployed.agent
    return (
        agent.ai_config is not None
        and Tool.voice_tts in agent.enabled_tools
        and Feature.voice_tts in TIERS[deployed.owner_tier].features
    )


def listens(deployed: DeployedAgent) -> bool:
    """A speaking agent whose owner turned listening on hears its voice channel."""
    ai = deployed.agent.ai_config
    return speaks_in_voice(deployed) and ai is not None and ai.listen


def listen_for(deployed: DeployedAgent) -> list[str]:
    """The names the edge listens for on the agent's behalf; none when it does not listen."""
    return [deployed.agent.name] if listens(deployed) else []


def heard_message(
    transcript: VoiceTranscript, event_id: str, deployed: DeployedAgent
) -> DiscordMessage | None:
    """A transcript that names the agent, as a message mentioning it in the voice channel's text chat; None
    when the agent does not listen or was not named. A transcript has no Discord message: its id is a
    number derived from the event id that names none, so the reply goes out as a plain message (the edge
    sends replies with fail_if_not_exists false)."""
    name = deployed.agent.name.lower()
    said = transcript.content
    if not listens(deployed) or not re.search(rf"\b{re.escape(name)}\b", said, re.IGNORECASE):
        return None
    bot_id = deployed.deployment.bot_id
    mention = f"<@{bot_id}>"
    return DiscordMessage(
        id=str(int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=7).digest())),
        channel_id=transcript.channel_id,
        guild_id=transcript.guild_id,
        author=DiscordUser(id=transcript.user_id),
        content=re.sub(rf"\b{re.escape(name)}\b", mention, said, count=1, flags=re.IGNORECASE),
        mentions=[Mention(id=bot_id, username=deployed.agent.name, bot=True)],
    )


def voice_id(deployed: DeployedAgent) -> str:
    """The ElevenLabs voice the agent speaks with; empty for the offline engine. A premium voice needs the
    custom_voice feature of the owner's tier: after a downgrade the agent speaks with the offline engine."""
    ai = deployed.agent.ai_config
    chosen = ai.elevenlabs_voice_id if ai is not None else None
    if chosen is None or Feature.custom_voice not in TIERS[deployed.owner_tier].features:
        return ""
    return chosen


def _voice_home(deployed: DeployedAgent, directory: GuildDirectory | None) -> str | None:
    """The voice channel a speaking agent stays in; None for an agent that does not speak or is paused."""
    if deployed.deployment.status is not DeploymentStatus.active or not speaks_in_voice(deployed):
        return None
    return voice_channel(deployed, directory)


def _join_home(
    deployed: DeployedAgent, directory: GuildDirectory | None, cause_id: str, *, when_there: bool
) -> list[VoiceJoin]:
    """Join the agent's voice channel; when the guild shows its bot there already, only if `when_there`
    (the join then tells the edge whether to listen) or the agent listens (a restarted edge forgot it)."""
    home = _voice_home(deployed, directory)
    bot_id = deployed.deployment.bot_id
    there = directory is not None and directory.voice_channel_of.get(bot_id) == home
    if home is None or (there and not when_there and not listens(deployed)):
        return []
    emit = Emitter(cause_id, deployed, deployed.deployment.guild_id, None)
    return [emit.action(VoiceJoin, channel_id=home, listen_for=listen_for(deployed))]


def voice_joins(
    record: RoutingRecord, previous: RoutingRecord | None, directory: GuildDirectory | None
) -> list[VoiceJoin]:
    """A speaking agent joins its voice channel when it is deployed or started, or its channel changes."""
    before = {
        str(d.deployment.deployment_id): (_voice_home(d, directory), listens(d))
        for d in (previous.deployments if previous is not None else [])
    }
    return [
        join
        for deployed in record.deployments
        # A direct-message record has no voice.
        if deployed.deployment.guild_id == record.key
        and before.get(str(deployed.deployment.deployment_id))
        != (_voice_home(deployed, directory), listens(deployed))
        for join in _join_home(deployed, directory, f"deploy:{record.key}:{record.version}", when_there=True)
    ]


def joins_on_connect(
    record: RoutingRecord | None, bot_id: str, directory: GuildDirectory, cause_id: str
) -> list[VoiceJoin]:
    """A bot's speaking agents join their voice channel when the bot connects to the guild (GUILD_CREATE):
    after a restart, or when the channel's name could not be resolved at deployment."""
    return [
        join
        for deployed in (record.deployments if record is not None else [])
        if deployed.deployment.bot_id == bot_id and deployed.deployment.guild_id == directory.guild_id
        for join in _join_home(deployed, directory, cause_id, when_there=False)
    ]
