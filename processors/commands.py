"""Commands as slash-command interactions and as prefix messages ("!play lofi"), parsed into one shape.

Each built-in command declares its options once (models/commands.py); the same declaration reads a slash
command's options and splits a prefix command's text, and is what the gateway registers with Discord.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from models.agent import AgentConfig, CustomCommand
from models.commands import (
    COMMAND_OPTIONS,
    CUSTOM_OPTIONS,
    REPORT_OPTIONS,
    REQUIRED_PERMISSION,
    OptionKind,
    OptionSpec,
)
from models.discord import DiscordUser, InteractionOption
from models.permissions import PERMISSION_NAMES
from models.tools import REPORT_COMMAND, TOOLS_OF_COMMAND, Tool
from processors.emit import Origin
from processors.permissions import granted

MAX_DURATION_S = 28 * 24 * 3600


OptionValue = str | int

_USER_TOKEN = re.compile(r"^(?:<@!?(\d{1,20})>|(\d{15,20}))(?:\s+|$)")
_DURATION_TOKEN = re.compile(r"^(\d{1,7})\s*(s|sec|secs|m|min|mins|h|hr|hrs|d|w)?(?:\s+|$)", re.IGNORECASE)
_INTEGER_TOKEN = re.compile(r"^(-?\d{1,9})(?:\s+|$)")
_CLOCK_TOKEN = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)(?:\s+|$)")
# A message link (its last part is the message id) or a bare message id.
_MESSAGE_TOKEN = re.compile(
    r"^(?:https://(?:\w+\.)?discord(?:app)?\.com/channels/(?:\d{1,20}|@me)/\d{1,20}/(\d{1,20})|(\d{15,20}))"
    r"(?:\s+|$)"
)
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


def parse_clock(text: str) -> str:
    """ "9:05" -> "09:05": a local time of day."""
    match = _CLOCK_TOKEN.match(text.strip())
    if match is None:
        raise UsageError(f"{text!r} is not a time of day like 18:00")
    return f"{int(match.group(1)):02d}:{match.group(2)}"


def parse_message(text: str) -> str:
    """The message id a link or a bare id names."""
    match = _MESSAGE_TOKEN.match(text.strip())
    if match is None or match.end() != len(text.strip()):
        raise UsageError(f"{text!r} is not a message link or id")
    return match.group(1) or match.group(2)


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
    if name == REPORT_COMMAND:
        return REPORT_OPTIONS
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
                OptionKind.message: _MESSAGE_TOKEN,
                OptionKind.duration: _DURATION_TOKEN,
                OptionKind.integer: _INTEGER_TOKEN,
                OptionKind.clock: _CLOCK_TOKEN,
            }[spec.kind]
            match = pattern.match(rest)
            if match is not None:
                token = match.group(0).strip()
                if spec.kind in (OptionKind.user, OptionKind.message):
                    options[spec.name] = match.group(1) or match.group(2)
                elif spec.kind is OptionKind.duration:
                    options[spec.name] = parse_duration(token)
                elif spec.kind is OptionKind.clock:
                    options[spec.name] = parse_clock(token)
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
        elif spec.kind is OptionKind.clock:
            options[spec.name] = parse_clock(str(value))
        elif spec.kind is OptionKind.message:
            options[spec.name] = parse_message(str(value))
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
    """Built-in commands must be listed in enabled_commands; custom commands are enabled by being defined;
    /report always is."""
    return (
        name == REPORT_COMMAND
        or agent.allows_command(name)
        or any(command.name == name for command in agent.custom_commands)
    )


def missing_permission(invocation: Invocation, shown: str) -> str | None:
    """Why the invoker may not run a command that needs a permission (shown as `/ban` or `!ban`), or None."""
    needed = REQUIRED_PERMISSION.get(invocation.name)
    if needed is None or granted(invocation.permissions, needed):
        return None
    return f"You need the {PERMISSION_NAMES[needed]} permission to use {shown}{invocation.name}."


def command_tool(agent: AgentConfig, invocation: Invocation) -> Tool | None:
    """The enabled tool that serves a built-in command: `/leaderboard coins` is the economy's board, a bare
    `/leaderboard` the leveling one unless the agent has only the economy."""
    tools = [tool for tool in TOOLS_OF_COMMAND.get(invocation.name, ()) if tool in agent.enabled_tools]
    if Tool.economy in tools and (invocation.text("board").strip().lower() == "coins" or len(tools) == 1):
        return Tool.economy
    return next((tool for tool in tools if tool is not Tool.economy), None)
