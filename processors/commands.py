"""Commands as slash-command interactions and as prefix messages ("!play lofi"), parsed into one shape.

Each built-in command declares its options once; the same declaration reads a slash command's options and
splits a prefix command's text, and can register the slash commands with Discord.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from models.agent import AgentConfig, CustomCommand
from models.discord import DiscordUser, InteractionOption
from processors.emit import Origin

MAX_DURATION_S = 28 * 24 * 3600


class OptionKind(StrEnum):
    user = "user"
    duration = "duration"
    integer = "integer"
    text = "text"


@dataclass(frozen=True)
class OptionSpec:
    name: str
    kind: OptionKind
    required: bool = False
    description: str = ""


_USER = OptionSpec("user", OptionKind.user, required=True, description="the member")
_REASON = OptionSpec("reason", OptionKind.text, description="why")

COMMAND_OPTIONS: dict[str, tuple[OptionSpec, ...]] = {
    "play": (OptionSpec("query", OptionKind.text, required=True, description="what to play"),),
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
    "leaderboard": (),
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
}
CUSTOM_OPTIONS = (OptionSpec("args", OptionKind.text, description="text for the command"),)

OptionValue = str | int

_USER_TOKEN = re.compile(r"^(?:<@!?(\d{1,20})>|(\d{15,20}))(?:\s+|$)")
_DURATION_TOKEN = re.compile(r"^(\d{1,7})\s*(s|sec|secs|m|min|mins|h|hr|hrs|d|w)?(?:\s+|$)", re.IGNORECASE)
_INTEGER_TOKEN = re.compile(r"^(-?\d{1,9})(?:\s+|$)")
_UNIT_S = {"s": 1, "sec": 1, "secs": 1, "m": 60, "min": 60, "mins": 60, "h": 3600, "hr": 3600, "hrs": 3600}
_UNIT_S |= {"d": 86400, "w": 604800}


class UsageError(ValueError):
    """A command whose options do not fit its declaration; the message says which."""


@dataclass(frozen=True)
class Invocation:
    name: str
    options: dict[str, OptionValue]
    user: DiscordUser
    channel_id: str
    guild_id: str | None
    # The invoker's permissions: from the interaction, or computed from the guild's roles.
    permissions: int
    role_ids: tuple[str, ...]
    at: datetime
    origin: Origin
    # The roles of the members the command names (from the interaction's resolved data or the message's
    # mentions), by user id; a member named by a bare id is absent.
    named_member_roles: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def text(self, name: str) -> str:
        value = self.options.get(name)
        return value if isinstance(value, str) else ""

    def number(self, name: str) -> int | None:
        value = self.options.get(name)
        return value if isinstance(value, int) else None


def split_prefix(content: str, prefix: str) -> tuple[str, str] | None:
    """("play", "lofi") from "!play lofi"; None when the message is not a command."""
    if not content.startswith(prefix):
        return None
    body = content[len(prefix) :]
    match = re.match(r"([A-Za-z0-9_-]{1,32})(?:\s+(.*))?$", body, re.DOTALL)
    if match is None:
        return None
    return match.group(1).lower(), (match.group(2) or "").strip()


def parse_duration(text: str) -> int:
    match = _DURATION_TOKEN.match(text.strip())
    if match is None:
        raise UsageError(f"{text!r} is not a duration like 30s, 10m, 2h or 1d")
    seconds = int(match.group(1)) * _UNIT_S[(match.group(2) or "s").lower()]
    if not 1 <= seconds <= MAX_DURATION_S:
        raise UsageError("the duration must be between 1 second and 28 days")
    return seconds


def describe_duration(seconds: int) -> str:
    """600 -> "10m", 5400 -> "1h 30m"."""
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return " ".join(parts[:2]) or "0s"


def options_for(name: str, custom: list[CustomCommand]) -> tuple[OptionSpec, ...] | None:
    if any(command.name == name for command in custom):
        return CUSTOM_OPTIONS
    return COMMAND_OPTIONS.get(name)


def parse_prefix_args(specs: tuple[OptionSpec, ...], text: str) -> dict[str, OptionValue]:
    """Options in declaration order; a text option takes the rest of the line."""
    options: dict[str, OptionValue] = {}
    rest = text.strip()
    for spec in specs:
        if spec.kind is OptionKind.text:
            if rest:
                options[spec.name] = rest
                rest = ""
        else:
            pattern = {
                OptionKind.user: _USER_TOKEN,
                OptionKind.duration: _DURATION_TOKEN,
                OptionKind.integer: _INTEGER_TOKEN,
            }[spec.kind]
            match = pattern.match(rest)
            if match is not None:
                token = match.group(0).strip()
                if spec.kind is OptionKind.user:
                    options[spec.name] = match.group(1) or match.group(2)
                elif spec.kind is OptionKind.duration:
                    options[spec.name] = parse_duration(token)
                else:
                    options[spec.name] = int(token)
                rest = rest[match.end() :]
        if spec.required and spec.name not in options:
            raise UsageError(f"{spec.name} is missing")
    return options


def parse_slash_options(
    specs: tuple[OptionSpec, ...], given: list[InteractionOption]
) -> dict[str, OptionValue]:
    by_name = {option.name: option.value for option in given}
    options: dict[str, OptionValue] = {}
    for spec in specs:
        value = by_name.get(spec.name)
        if value is None or value == "":
            if spec.required:
                raise UsageError(f"{spec.name} is missing")
            continue
        if spec.kind is OptionKind.duration:
            options[spec.name] = value if isinstance(value, int) else parse_duration(str(value))
        elif spec.kind is OptionKind.integer:
            try:
                options[spec.name] = int(value)
            except (TypeError, ValueError):
                raise UsageError(f"{spec.name} must be a whole number") from None
        else:
            options[spec.name] = str(value)
    return options


def usage(name: str, specs: tuple[OptionSpec, ...], prefix: str) -> str:
    parts = [f"<{s.name}>" if s.required else f"[{s.name}]" for s in specs]
    return " ".join([f"{prefix}{name}", *parts])


def command_enabled(agent: AgentConfig, name: str) -> bool:
    """Built-in commands must be listed in enabled_commands; custom commands are enabled by being defined."""
    return agent.allows_command(name) or any(command.name == name for command in agent.custom_commands)
