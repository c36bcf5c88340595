"""The application commands a bot registers, derived from its agents' configurations."""

from __future__ import annotations

from typing import Any

from models.agent import AgentConfig, AgentMode
from models.commands import (
    COMMAND_DESCRIPTIONS,
    COMMAND_OPTIONS,
    CommandOptionType,
    agent_commands,
    builtin_command,
    commands_digest,
    guild_commands,
)
from models.permissions import BAN_MEMBERS
from models.tools import COMMANDS_BY_TOOL, REPORT_COMMAND, TOOLS_OF_COMMAND, Tool


def agent(*tools: Tool, **config: Any) -> AgentConfig:
    commands = [command for tool in tools for command in COMMANDS_BY_TOOL.get(tool, ())]
    values = {
        "name": "Bot",
        "mode": AgentMode.utility,
        "enabled_tools": list(tools),
        "enabled_commands": commands,
    }
    return AgentConfig.model_validate(values | config)


def test_every_built_in_command_is_declared_for_registration() -> None:
    assert set(COMMAND_OPTIONS) == set(TOOLS_OF_COMMAND) == set(COMMAND_DESCRIPTIONS)
    for tool in COMMANDS_BY_TOOL:
        for command in agent_commands(agent(tool)):  # each validates as Discord's route takes it
            assert command.description and len(command.options) <= 25


def test_music_and_moderation_register_exactly_their_commands_with_types_and_permissions() -> None:
    commands = {c.name: c for c in guild_commands([agent(Tool.music, Tool.moderation)])}
    expected = {*COMMANDS_BY_TOOL[Tool.music], *COMMANDS_BY_TOOL[Tool.moderation], REPORT_COMMAND}
    assert set(commands) == expected
    [query] = commands["play"].options
    assert (query.name, query.type, query.required) == ("query", CommandOptionType.string, True)
    assert [o.type for o in commands["ban"].options] == [CommandOptionType.user, CommandOptionType.string]
    assert commands["ban"].default_member_permissions == str(BAN_MEMBERS)
    assert commands["play"].default_member_permissions is None


def test_disabled_tools_and_commands_register_nothing_but_the_report() -> None:
    some_music = agent(Tool.music, enabled_commands=["queue"])
    assert [c.name for c in guild_commands([some_music])] == ["queue", REPORT_COMMAND]
    assert [c.name for c in guild_commands([agent(Tool.logging)])] == [REPORT_COMMAND]


def test_a_guild_registers_the_union_of_its_agents_and_custom_commands() -> None:
    custom = {"name": "hello", "template": "hi {user}"}
    greeter = agent(Tool.custom_commands, custom_commands=[custom])
    both = guild_commands([agent(Tool.leveling), greeter])
    assert [c.name for c in both] == ["hello", "leaderboard", "rank", REPORT_COMMAND]
    assert both[0].description == "Bot: hello" and both[0].options[0].name == "args"


def test_the_digest_names_the_set_whatever_the_order_of_the_agents() -> None:
    music, games = agent(Tool.music), agent(Tool.games)
    assert commands_digest(guild_commands([music, games])) == commands_digest(guild_commands([games, music]))
    assert commands_digest(guild_commands([music])) != commands_digest(guild_commands([music, games]))


def test_every_builtin_command_registers_its_required_options_first() -> None:
    """Discord refuses a command whose required options do not come first (the emulator too)."""
    for name in COMMAND_OPTIONS:
        required = [option.required for option in builtin_command(name).options]
        assert required == sorted(required, reverse=True), name


def test_only_an_autocomplete_option_says_so_when_registered() -> None:
    [query] = builtin_command("play").model_dump(mode="json")["options"]
    assert query["autocomplete"] is True
    assert all("autocomplete" not in option for option in builtin_command("ban").model_dump()["options"])
