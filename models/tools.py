"""Tools an agent can enable and the commands each tool brings."""

from __future__ import annotations

from enum import StrEnum


class Tool(StrEnum):
    music = "music"
    moderation = "moderation"
    logging = "logging"
    automod = "automod"
    games = "games"
    voice_tts = "voice_tts"
    leveling = "leveling"
    utility = "utility"
    custom_commands = "custom_commands"
    analytics = "analytics"
    announcements = "announcements"
    knowledge = "knowledge"


# The built-in commands, by the tool that provides them. Custom commands come from the agent's config.
COMMANDS_BY_TOOL: dict[Tool, tuple[str, ...]] = {
    Tool.music: ("play", "queue", "skip", "stop", "pause", "resume", "nowplaying", "volume"),
    Tool.moderation: ("ban", "unban", "kick", "timeout", "warn", "warnings"),
    Tool.utility: ("remind", "poll"),
    Tool.leveling: ("rank", "leaderboard"),
    Tool.games: ("roll", "coinflip"),
}

TOOL_OF_COMMAND: dict[str, Tool] = {
    command: tool for tool, commands in COMMANDS_BY_TOOL.items() for command in commands
}
