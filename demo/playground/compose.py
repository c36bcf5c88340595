"""What the playground's person types, turned into what Discord would send, and Discord's messages turned
into what the page shows. Pure functions.

"/play lofi" becomes a slash command (an interaction for one bot), with options parsed by the processors'
own command declarations; "@Luna" becomes a real mention, `<@bot id>`; anything else, "!play lofi"
included, is a plain message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from demo.playground.live import Names
from demo.playground.views import AgentView, AnswerView, EmbedView, MessageView
from models.commands import OPTION_TYPES, OptionKind
from models.discord import DiscordMessage, DiscordView, InteractionOption
from processors.commands import UsageError, command_enabled, options_for, parse_prefix_args, usage

_SLASH = re.compile(r"^/([A-Za-z0-9_-]{1,32})(?:\s+(.*))?$", re.DOTALL)
_MENTION = re.compile(r"<@!?(\d{1,20})>")
EPHEMERAL_FLAG = 1 << 6


class ComposeError(ValueError):
    """What the person typed cannot be sent; the message says why, for the page to show."""


def parse_slash(content: str) -> tuple[str, str] | None:
    """("play", "lofi") from "/play lofi"; None when the text is not a slash command."""
    match = _SLASH.match(content.strip())
    if match is None:
        return None
    return match.group(1).lower(), (match.group(2) or "").strip()


def pick_agent(name: str, agents: list[AgentView], bot_id: str | None = None) -> AgentView:
    """The agent a slash command goes to: the one asked for, else the first that has the command."""
    if bot_id is not None:
        chosen = next((a for a in agents if a.bot_id == bot_id), None)
        if chosen is None:
            raise ComposeError(f"no agent here speaks through bot {bot_id}")
        return chosen
    chosen = next((a for a in agents if command_enabled(a.config, name)), None)
    if chosen is None:
        raise ComposeError(f"no agent here has /{name}")
    return chosen


def slash_options(agent: AgentView, name: str, text: str) -> list[InteractionOption]:
    """The interaction options of "/name text" as Discord's client would send them."""
    specs = options_for(name, agent.config.custom_commands)
    if specs is None:
        raise ComposeError(f"/{name} is not a command {agent.name} knows")
    try:
        values = parse_prefix_args(specs, text)
    except UsageError as error:
        raise ComposeError(f"{error}. Usage: {usage(name, specs, '/')}") from None
    kinds = {spec.name: spec.kind for spec in specs}
    # A duration is registered as text ("10m"); the parsed seconds travel as "600s".
    return [
        InteractionOption(
            name=key,
            type=OPTION_TYPES[kinds[key]],
            value=f"{value}s" if kinds[key] is OptionKind.duration else value,
        )
        for key, value in values.items()
    ]


def with_mentions(content: str, people: dict[str, str]) -> str:
    """ "@Luna hi" -> "<@id> hi" for every known display name (longest first, so "@Mod Bot" is not "@Mod")."""
    for name in sorted(people, key=len, reverse=True):
        pattern = re.compile(rf"@{re.escape(name)}(?![\w])", re.IGNORECASE)
        content = pattern.sub(f"<@{people[name]}>", content)
    return content


def shown_mentions(content: str, names: Names) -> str:
    """ "<@id>" -> "@Name", as Discord's client shows a mention."""
    return _MENTION.sub(lambda m: f"@{names.user(m.group(1)) or m.group(1)}", content)


class _Embed(DiscordView):
    title: str = ""
    description: str = ""


class _InteractionMetadata(DiscordView):
    id: str


class _MessageBody(DiscordView):
    content: str = ""
    embeds: list[_Embed] = Field(default_factory=list)
    flags: int = 0


class BotAction(DiscordView):
    """One record of the emulator's log of what bots did (GET /_control/actions)."""

    seq: int
    kind: str
    bot_id: str
    channel_id: str | None = None
    payload: dict[str, Any]
    at: float


class InteractionAnswer(DiscordView):
    """The payload of an `interaction_response` record: the body the bot answered with."""

    interaction_id: str
    stage: str
    data: _MessageBody | None = None


class _Activity(DiscordView):
    name: str = ""
    state: str | None = None

    @property
    def shown(self) -> str:
        # A custom status (type 4) carries its text in `state`.
        return self.state or self.name


class Presence(DiscordView):
    activities: list[_Activity] = Field(default_factory=list)


class HistoryMessage(DiscordMessage):
    """A message as the emulator's history returns it (Discord's message object)."""

    embeds: list[_Embed] = Field(default_factory=list)
    interaction_metadata: _InteractionMetadata | None = None
    flags: int = 0


def message_view(
    message: HistoryMessage,
    names: Names,
    you_id: str,
    commands: dict[str, str],
    answers: Mapping[tuple[str, str], AnswerView],
) -> MessageView:
    """`commands`: the slash commands the page ran, by interaction id, to label their responses; `answers`:
    how AI replies were written, by (bot id, id of the message answered)."""
    author = message.author
    member_nick = message.member.nick if message.member is not None else None
    interaction = message.interaction_metadata
    replied = message.referenced_message
    return MessageView(
        id=message.id,
        channel_id=message.channel_id,
        author_id=author.id,
        author_name=member_nick or names.users.get(author.id) or author.display_name,
        bot=author.bot,
        content=shown_mentions(message.content, names),
        embeds=[
            EmbedView(title=e.title, description=shown_mentions(e.description, names)) for e in message.embeds
        ],
        at=datetime.fromisoformat(message.timestamp) if message.timestamp else datetime.now(UTC),
        command=commands.get(interaction.id) if interaction is not None else None,
        ephemeral=bool(message.flags & EPHEMERAL_FLAG),
        mentions_you=any(user.id == you_id for user in message.mentions),
        replying_to=(names.user(replied.author.id) or replied.author.display_name) if replied else None,
        answered_by=answers.get((author.id, replied.id)) if replied else None,
    )
