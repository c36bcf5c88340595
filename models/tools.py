"""Tools an agent can enable, which of them the platform implements, and the commands each tool brings."""

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
    economy = "economy"


# The tools the processors give behaviour; the API refuses to enable any other. Names outside it are product
# plans that configurations stored before the refusal may still carry (they do nothing). A processors test
# proves each of these acts.
IMPLEMENTED_TOOLS: frozenset[Tool] = frozenset(
    {
        Tool.music,
        Tool.moderation,
        Tool.automod,
        Tool.games,
        Tool.leveling,
        Tool.utility,
        Tool.custom_commands,
        Tool.economy,
        Tool.analytics,
        Tool.announcements,
        Tool.knowledge,
        Tool.voice_tts,
    }
)


# The built-in commands, by the tool that provides them. Custom commands come from the agent's config.
COMMANDS_BY_TOOL: dict[Tool, tuple[str, ...]] = {
    Tool.music: ("play", "queue", "skip", "stop", "pause", "resume", "nowplaying", "volume"),
    Tool.moderation: ("ban", "unban", "kick", "timeout", "warn", "warnings"),
    Tool.utility: ("remind", "poll"),
    Tool.leveling: ("rank", "leaderboard"),
    Tool.games: ("roll", "coinflip", "rps", "8ball", "hangman", "guess", "wins", "trivia"),
    # `/leaderboard coins` is the economy's board, a bare `/leaderboard` the leveling one.
    Tool.economy: ("daily", "balance", "give", "tip", "leaderboard"),
    Tool.analytics: ("stats",),
    Tool.announcements: ("announce",),
}

# Every agent answers /report, whatever its tools: a person must always be able to report what an agent said,
# so no custom command may take its name.
REPORT_COMMAND = "report"

# A command needs one of its tools enabled.
TOOLS_OF_COMMAND: dict[str, tuple[Tool, ...]] = {
    command: tuple(tool for tool, commands in COMMANDS_BY_TOOL.items() if command in commands)
    for commands in COMMANDS_BY_TOOL.values()
    for command in commands
}
