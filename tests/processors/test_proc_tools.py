"""No tool without behaviour: every `Tool` value is either implemented (in IMPLEMENTED_TOOLS, which the API
allows) and acts in the engine when enabled, or has nothing to call and is refused by the API.

A tool's handler is what `BEHAVIOUR` below exercises: each of its commands answered when the tool is
enabled and refused when it is not, or, for a tool without commands, the event it acts on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

import pytest

from models.actions import DeleteMessage, InteractionResponse, Reply, ReportedAction, VoiceJoin
from models.agent import AgentConfig, AgentMode
from models.commands import COMMAND_OPTIONS, OptionKind
from models.events import EventEnvelope
from models.knowledge import KnowledgeQuery
from models.permissions import ADMINISTRATOR
from models.tools import COMMANDS_BY_TOOL, IMPLEMENTED_TOOLS, Tool
from processors.engine import Engine, Outputs, Tables
from tests.processors.factories import (
    Where,
    agent_with,
    deployed,
    message_event,
    routing,
    slash_event,
    snowflake,
    user,
)

MEMBER, TARGET = user(snowflake(), "kai"), snowflake()
SAMPLE = {
    OptionKind.user: TARGET,
    OptionKind.duration: "10m",
    OptionKind.integer: "5",
    OptionKind.text: "rock",
    OptionKind.clock: "18:00",
}


class Guild:
    def __init__(self, agent: AgentConfig) -> None:
        self.id, self.channel, self.bot = snowflake(), snowflake(), snowflake()
        self.where = Where(self.bot, self.id, self.channel)
        self.engine = Engine(Tables(*({} for _ in fields(Tables))))
        assert self.engine.apply_routing(routing(self.id, deployed(agent, guild_id=self.id, bot_id=self.bot)))

    def run(self, event: EventEnvelope) -> Outputs:
        return self.engine.handle_event(event)

    def command(self, name: str) -> EventEnvelope:
        """`/name` with every option filled, by an administrator."""
        options = {spec.name: SAMPLE[spec.kind] for spec in COMMAND_OPTIONS[name]}
        return slash_event(self.where, MEMBER, name, options, permissions=ADMINISTRATOR)

    def message(self, content: str) -> EventEnvelope:
        return message_event(self.where, MEMBER, content)


def agent(tools: list[str], commands: list[str], **changes: Any) -> AgentConfig:
    return agent_with(AgentMode.utility, enabled_tools=tools, enabled_commands=commands, **changes)


def answer(outputs: Outputs) -> str:
    """What the member is told: the answer itself, or, for a moderation action, what its report will say
    once Discord confirms it."""
    for action in outputs.actions:
        if isinstance(action, InteractionResponse | Reply):
            return action.content or (action.embed.description if action.embed is not None else "")
        if isinstance(action, ReportedAction) and action.report is not None:
            return action.report.done
    raise AssertionError(f"nothing answers: {outputs.actions}")


def commands_answer(tool: Tool) -> None:
    """Each command of the tool is answered when the tool is enabled, and refused when it is not."""
    names = list(COMMANDS_BY_TOOL[tool])
    enabled, disabled = Guild(agent([tool.value], names)), Guild(agent([], []))
    for name in names:
        assert "is not enabled here" not in answer(enabled.run(enabled.command(name))), name
        assert answer(disabled.run(disabled.command(name))) == f"/{name} is not enabled here.", name


def automod_deletes_a_link() -> None:
    rules = {"links": {"enabled": True}}
    enabled = Guild(agent(["automod"], [], automod=rules))
    disabled = Guild(agent([], []))
    link = "look https://example.com/free"
    assert any(isinstance(a, DeleteMessage) for a in enabled.run(enabled.message(link)).actions)
    assert not any(isinstance(a, DeleteMessage) for a in disabled.run(disabled.message(link)).actions)


def custom_command_renders() -> None:
    hug = {"name": "hug", "template": "*hugs {user}*"}
    enabled = Guild(agent(["custom_commands"], ["hug"], custom_commands=[hug]))
    assert answer(enabled.run(enabled.message("!hug"))) == f"*hugs <@{MEMBER['id']}>*"
    disabled = Guild(agent([], []))
    assert not disabled.run(disabled.message("!hug")).actions


def stats_are_requested() -> None:
    """/stats is answered by the sinks process: the processors hand it a request for this guild."""
    enabled, disabled = Guild(agent(["analytics"], ["stats"])), Guild(agent([], []))
    asked = slash_event(enabled.where, MEMBER, "stats", {"window": "24h"}, permissions=ADMINISTRATOR)
    outputs = enabled.run(asked)
    [request] = outputs.stats
    assert (request.guild_id, request.window.value, outputs.actions) == (enabled.id, "24h", [])
    assert answer(disabled.run(disabled.command("stats"))) == "/stats is not enabled here."


def knowledge_looks_up_a_question() -> None:
    """A factual question to an agent with the tool sends its lookup along with the inference request."""

    def asked(tools: list[str]) -> KnowledgeQuery | None:
        always = {"response_triggers": {"random": {"probability": 1.0}}}
        config = agent_with(AgentMode.human_like, enabled_tools=tools, enabled_commands=[], behavior=always)
        guild = Guild(config)
        (request,) = guild.run(guild.message("who was Ada Lovelace?")).requests
        return request.knowledge

    assert asked(["knowledge"]) == KnowledgeQuery(topic="Ada Lovelace", language="en")
    assert asked([]) is None


def speaker_joins_its_voice_channel() -> None:
    """An AI agent with voice_tts joins its voice channel when deployed (and says its replies there)."""

    def joins(tools: list[str]) -> list[VoiceJoin]:
        config = agent_with(AgentMode.human_like, enabled_tools=tools, enabled_commands=[])
        guild_id, lounge = snowflake(), snowflake()
        speaker = deployed(config, guild_id=guild_id, bot_id=snowflake(), voice_channels=[lounge])
        engine = Engine(Tables(*({} for _ in fields(Tables))))
        actions = engine.deploy(routing(guild_id, speaker)).actions
        return [a for a in actions if isinstance(a, VoiceJoin) and a.channel_id == lounge]

    assert len(joins(["voice_tts"])) == 1
    assert joins([]) == []


BEHAVIOUR: dict[Tool, Callable[[], None]] = {
    Tool.music: lambda: commands_answer(Tool.music),
    Tool.moderation: lambda: commands_answer(Tool.moderation),
    Tool.utility: lambda: commands_answer(Tool.utility),
    Tool.leveling: lambda: commands_answer(Tool.leveling),
    Tool.games: lambda: commands_answer(Tool.games),
    Tool.economy: lambda: commands_answer(Tool.economy),
    Tool.announcements: lambda: commands_answer(Tool.announcements),
    Tool.automod: automod_deletes_a_link,
    Tool.custom_commands: custom_command_renders,
    Tool.analytics: stats_are_requested,
    Tool.knowledge: knowledge_looks_up_a_question,
    Tool.voice_tts: speaker_joins_its_voice_channel,
}


@pytest.mark.parametrize("tool", list(Tool))
def test_every_tool_acts_when_enabled_or_cannot_be_enabled(tool: Tool) -> None:
    if tool in IMPLEMENTED_TOOLS:
        assert tool in BEHAVIOUR, f"{tool.value} is listed as implemented but has no handler"
        BEHAVIOUR[tool]()
    else:
        assert tool not in BEHAVIOUR and tool not in COMMANDS_BY_TOOL, f"{tool.value} acts: list it"


def test_every_command_of_a_tool_is_covered() -> None:
    assert {tool for tool in COMMANDS_BY_TOOL} <= IMPLEMENTED_TOOLS
    assert set(COMMAND_OPTIONS) == {name for names in COMMANDS_BY_TOOL.values() for name in names}
