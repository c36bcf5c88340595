"""The built-in commands' declarations, and the application commands a bot registers with Discord.

Each built-in command declares its options, description and the permission it needs once; the processors
parse slash and prefix commands with the same declarations the gateway registers, and what a bot registers
in a guild is derived from its deployments' configurations there (never listed by hand).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from models.agent import AgentConfig
from models.common import Strict
from models.permissions import BAN_MEMBERS, KICK_MEMBERS, MODERATE_MEMBERS
from models.tools import REPORT_COMMAND, TOOLS_OF_COMMAND


class OptionKind(StrEnum):
    user = "user"
    duration = "duration"
    integer = "integer"
    text = "text"
    # A local time of day, "HH:MM".
    clock = "clock"
    # A message: its link ("https://discord.com/channels/<guild>/<channel>/<message>") or its id.
    message = "message"


@dataclass(frozen=True)
class OptionSpec:
    name: str
    kind: OptionKind
    required: bool = False
    description: str = ""
    # Discord asks for choices while the member types (the gateway answers from the music library).
    autocomplete: bool = False


_USER = OptionSpec("user", OptionKind.user, required=True, description="the member")
_REASON = OptionSpec("reason", OptionKind.text, description="why")
_AMOUNT = OptionSpec("amount", OptionKind.integer, required=True, description="how many")

COMMAND_OPTIONS: dict[str, tuple[OptionSpec, ...]] = {
    "play": (
        OptionSpec("query", OptionKind.text, required=True, description="what to play", autocomplete=True),
    ),
    "queue": (),
    "skip": (),
    "stop": (),
    "pause": (),
    "resume": (),
    "nowplaying": (),
    "volume": (OptionSpec("level", OptionKind.integer, description="0 to 200"),),
    "ban": (_USER, _REASON),
    "unban": (_USER,),
    "kick": (_USER, _REASON),
    "timeout": (_USER, OptionSpec("duration", OptionKind.duration, description="e.g. 10m"), _REASON),
    "warn": (_USER, _REASON),
    "warnings": (_USER,),
    "remind": (
        OptionSpec("when", OptionKind.duration, required=True, description="e.g. 10m, 2h"),
        OptionSpec("text", OptionKind.text, required=True, description="what to remind you of"),
    ),
    "poll": (
        OptionSpec("question", OptionKind.text, required=True, description="question | option | option"),
    ),
    "rank": (OptionSpec("user", OptionKind.user, description="whose rank"),),
    "leaderboard": (OptionSpec("board", OptionKind.text, description="xp or coins"),),
    "roll": (OptionSpec("dice", OptionKind.text, description="e.g. 2d6"),),
    "coinflip": (),
    # The opponent first: a prefix command's text option takes the rest of the line ("!rps @mia rock").
    "rps": (
        OptionSpec("opponent", OptionKind.user, description="a member to challenge (default: me)"),
        OptionSpec("choice", OptionKind.text, required=True, description="rock, paper or scissors"),
    ),
    "8ball": (OptionSpec("question", OptionKind.text, required=True, description="a yes-or-no question"),),
    "hangman": (),
    "guess": (OptionSpec("guess", OptionKind.text, required=True, description="a letter or the word"),),
    "wins": (),
    "trivia": (),
    "daily": (),
    "balance": (OptionSpec("user", OptionKind.user, description="whose balance"),),
    "give": (_USER, _AMOUNT),
    "tip": (OptionSpec("agent", OptionKind.user, required=True, description="the agent"), _AMOUNT),
    "stats": (OptionSpec("window", OptionKind.text, description="24h, 7d (default) or 30d"),),
    # The time first: a prefix command's text option takes the rest of the line ("!announce 18:00 hi").
    "announce": (
        OptionSpec("at", OptionKind.clock, description="a local time (HH:MM) to post at; default: now"),
        OptionSpec("message", OptionKind.text, required=True, description="the text, or a template's name"),
    ),
}
CUSTOM_OPTIONS = (OptionSpec("args", OptionKind.text, description="text for the command"),)

# The message first: a prefix command's text option takes the rest of the line ("!report <link> rude").
REPORT_OPTIONS = (
    OptionSpec("message", OptionKind.message, description="its link or id (default: my last message here)"),
    OptionSpec("reason", OptionKind.text, required=True, description="what is wrong with it"),
)

# What Discord shows under each command's name (1 to 100 characters).
COMMAND_DESCRIPTIONS: dict[str, str] = {
    "play": "Play a track or add it to the queue",
    "queue": "Show the music queue",
    "skip": "Skip the current track",
    "stop": "Stop the music and clear the queue",
    "pause": "Pause the music",
    "resume": "Resume the music",
    "nowplaying": "Show the track playing now",
    "volume": "Show or set the volume",
    "ban": "Ban a member",
    "unban": "Lift a ban",
    "kick": "Kick a member",
    "timeout": "Time a member out",
    "warn": "Warn a member",
    "warnings": "List a member's warnings",
    "remind": "Remind you of something later",
    "poll": "Start a poll",
    "rank": "Show a member's level and rank",
    "leaderboard": "Show the server's leaderboard (xp, or coins)",
    "roll": "Roll dice",
    "coinflip": "Flip a coin",
    "rps": "Play rock, paper, scissors",
    "8ball": "Ask the magic 8-ball",
    "hangman": "Start a game of hangman",
    "guess": "Guess a letter or the word in hangman",
    "wins": "Show the games' wins board",
    "trivia": "Show the server's trivia points",
    "daily": "Collect your daily coins",
    "balance": "Show a member's coins",
    "give": "Give coins to a member",
    "tip": "Tip an agent some coins",
    "stats": "Show the server's activity (moderators)",
    "announce": "Post an announcement now or at a local time",
}

# The permission each moderators' command needs: checked by the processors, and registered as the command's
# default member permissions so Discord shows it only to members who hold it.
REQUIRED_PERMISSION: dict[str, int] = {
    "ban": BAN_MEMBERS,
    "unban": BAN_MEMBERS,
    "kick": KICK_MEMBERS,
    "timeout": MODERATE_MEMBERS,
    "warn": MODERATE_MEMBERS,
    "warnings": MODERATE_MEMBERS,
    "stats": MODERATE_MEMBERS,
    "announce": MODERATE_MEMBERS,
}


class CommandOptionType(IntEnum):
    """Discord's application command option types used here. A duration is text ("10m") parsed later."""

    string = 3
    integer = 4
    user = 6


OPTION_TYPES = {
    OptionKind.text: CommandOptionType.string,
    OptionKind.duration: CommandOptionType.string,
    OptionKind.clock: CommandOptionType.string,
    OptionKind.message: CommandOptionType.string,
    OptionKind.integer: CommandOptionType.integer,
    OptionKind.user: CommandOptionType.user,
}


class ApplicationCommandOption(Strict):
    type: CommandOptionType
    name: str = Field(pattern=r"^[a-z0-9_-]{1,32}$")
    description: str = Field(min_length=1, max_length=100)
    required: bool = False
    # Sent only when true (an option of another type must not carry it), as discord.py does.
    autocomplete: bool | None = None

    @model_serializer(mode="wrap")
    def _without_unset_autocomplete(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        body: dict[str, Any] = handler(self)
        if body.get("autocomplete") is None:
            body.pop("autocomplete", None)
        return body


class ApplicationCommand(Strict):
    """A CHAT_INPUT command as the bulk-overwrite route takes it."""

    type: int = 1
    name: str = Field(pattern=r"^[a-z0-9_-]{1,32}$")
    description: str = Field(min_length=1, max_length=100)
    options: list[ApplicationCommandOption] = Field(default_factory=list, max_length=25)
    # A permission bitfield as a decimal string; None lets every member see the command.
    default_member_permissions: str | None = None


def _options(specs: tuple[OptionSpec, ...]) -> list[ApplicationCommandOption]:
    # Discord refuses a command whose required options do not come first. Slash options arrive by name, so
    # registering them in that order leaves the declared order to prefix commands (/rps takes its optional
    # opponent before the required choice, since a text option takes the rest of the line).
    return [
        ApplicationCommandOption(
            type=OPTION_TYPES[spec.kind],
            name=spec.name,
            description=spec.description or spec.name,
            required=spec.required,
            autocomplete=spec.autocomplete or None,
        )
        for spec in sorted(specs, key=lambda spec: not spec.required)
    ]


def builtin_command(name: str) -> ApplicationCommand:
    permission = REQUIRED_PERMISSION.get(name)
    return ApplicationCommand(
        name=name,
        description=COMMAND_DESCRIPTIONS[name],
        options=_options(COMMAND_OPTIONS[name]),
        default_member_permissions=str(permission) if permission is not None else None,
    )


def agent_commands(agent: AgentConfig) -> list[ApplicationCommand]:
    """The commands one agent answers: its enabled built-ins whose tool is enabled, /report, and its custom
    commands (enabled by being defined)."""
    commands = [
        builtin_command(name)
        for name in agent.enabled_commands
        if any(tool in agent.enabled_tools for tool in TOOLS_OF_COMMAND.get(name, ()))
    ]
    commands.append(
        ApplicationCommand(
            name=REPORT_COMMAND,
            description="Report a message of this agent to its owner",
            options=_options(REPORT_OPTIONS),
        )
    )
    commands += [
        ApplicationCommand(
            name=custom.name,
            description=custom.description or f"{agent.name}: {custom.name}",
            options=_options(CUSTOM_OPTIONS),
        )
        for custom in agent.custom_commands
    ]
    return commands


def guild_commands(agents: Iterable[AgentConfig]) -> list[ApplicationCommand]:
    """What a bot registers in a guild: the union of its deployed agents' commands there, by name (the first
    agent defining a name wins), sorted so the same set always hashes the same."""
    by_name: dict[str, ApplicationCommand] = {}
    for agent in agents:
        for command in agent_commands(agent):
            by_name.setdefault(command.name, command)
    return [by_name[name] for name in sorted(by_name)]


def commands_digest(commands: list[ApplicationCommand]) -> str:
    """Names what was registered, so an unchanged set is never sent again."""
    body = json.dumps([command.model_dump(mode="json") for command in commands], sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()
