"""The demo world: the agents' configurations, the simulated chat, and the world loaded into the emulator."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr, ValidationError

from api.presets import all_presets
from demo.world import (
    AGENTS,
    ANNOUNCEMENT_CHANNEL,
    CHATTER,
    IN_VOICE,
    MEMBERS,
    TEXT_CHANNELS,
    VOICE_CHANNEL,
    AgentPlan,
    WorldIds,
    agent_config,
    allocate_ids,
    chat_line,
    world_spec,
)
from emulator.discord import DiscordEmulator
from emulator.discord.payloads import guild_create_payload
from models.agent import AgentMode
from models.tools import Tool
from processors.engine import Engine, Tables
from tests.processors.factories import deployed, envelope, message_data, routing, user


def test_every_agent_is_its_preset_with_the_demo_changes() -> None:
    presets = all_presets()
    configs = {plan.key: agent_config(plan, presets[plan.preset].config) for plan in AGENTS}
    assert {config.mode for config in configs.values()} >= {
        AgentMode.bare,
        AgentMode.utility,
        AgentMode.enhanced,
        AgentMode.human_like,
    }
    luna, preset_luna = configs["luna"].character, presets["luna"].config.character
    assert luna is not None and preset_luna is not None
    assert luna.catchphrases == preset_luna.catchphrases
    assert configs["guardian"].automod is not None and configs["guardian"].automod.links.enabled
    for plan in AGENTS:
        assert configs[plan.key].name == plan.name
        assert configs[plan.key].command_prefix == plan.command_prefix


def test_no_two_agents_answer_the_same_prefix_command() -> None:
    presets = all_presets()
    seen: dict[str, str] = {}
    for plan in AGENTS:
        config = agent_config(plan, presets[plan.preset].config)
        for command in config.enabled_commands:
            invoked = f"{config.command_prefix}{command}"
            assert invoked not in seen, f"{invoked} answered by {seen.get(invoked)} and {plan.name}"
            seen[invoked] = plan.name


def test_a_change_that_breaks_the_configuration_names_the_field() -> None:
    broken = AgentPlan("x", "utility", "X", "!", enabled_tools=(Tool.moderation,), enabled_commands=("play",))
    with pytest.raises(ValidationError, match=r"enabled_commands\.0"):
        agent_config(broken, all_presets()["utility"].config)


def test_chat_lines_vary_repeat_for_the_same_seed_and_mention_only_real_bots() -> None:
    ids = allocate_ids()
    lines = [chat_line(ids, n) for n in range(200)]
    assert lines == [chat_line(ids, n) for n in range(200)]
    assert len({line.content for line in lines}) > 20
    assert {line.channel.name for line in lines} == {name for name, _ in TEXT_CHANNELS}
    assert {line.author.username for line in lines} == {username for username, _ in MEMBERS}
    mentioned = [line for line in lines if "<@" in line.content]
    assert mentioned and all("{" not in line.content for line in lines)
    assert all(any(f"<@{bot}>" in line.content for bot in ids.bot_ids.values()) for line in mentioned)
    # Nothing the simulated members say trips the auto-mod's link rule.
    assert not any("http" in template or "www." in template for pool in CHATTER.values() for template in pool)


def test_lines_mentioning_an_absent_agent_are_left_out() -> None:
    only_music = tuple(plan for plan in AGENTS if plan.key == "music")
    ids = allocate_ids(only_music)
    assert all("<@" not in chat_line(ids, n).content for n in range(100))


@pytest.mark.stack
async def test_the_world_loads_into_the_emulator(
    emulator: DiscordEmulator, seeded: tuple[WorldIds, dict[str, SecretStr]]
) -> None:
    ids, tokens = seeded
    guild = emulator.world.guild(ids.guild_id)
    assert guild.name == "Deep Demo"
    assert sorted(str(c.name) for c in guild.channels.values()) == sorted(
        [name for name, _ in TEXT_CHANNELS] + [VOICE_CHANNEL, ANNOUNCEMENT_CHANNEL[0]]
    )
    people = {p.user_id for p in (ids.you, *ids.members)}
    assert people <= set(guild.members)
    assert set(guild.bot_ids) == set(ids.bot_ids.values())
    # One token per agent, each the token of that agent's bot, and never shown in a repr.
    for key, bot_id in ids.bot_ids.items():
        assert emulator.world.tokens[tokens[key].get_secret_value()].id == bot_id
        assert tokens[key].get_secret_value() not in repr(tokens)
    in_voice = {p.user_id for p in (ids.you, *ids.members) if p.username in IN_VOICE}
    assert set(guild.voice_states) == in_voice
    assert {state["channel_id"] for state in guild.voice_states.values()} == {ids.voice_channel.channel_id}


def test_the_demos_luna_greets_in_the_guilds_home_channel() -> None:
    """Luna's preset names no channel and the demo deploys her to no channel in particular: her routines
    speak in the guild's home channel (no system channel in the demo: its first text channel)."""
    ids = allocate_ids()
    emu = DiscordEmulator()
    emu.load(world_spec(ids))
    luna_bot = emu.world.bots[ids.bot_ids["luna"]]
    guild = emu.world.guilds[ids.guild_id]
    created = guild_create_payload(guild, emu.world, luna_bot, all_members=False, large=False)
    plan = next(plan for plan in AGENTS if plan.key == "luna")
    config = agent_config(plan, all_presets()["luna"].config)
    assert not config.channels.text_channels
    morning = datetime(2026, 1, 15, 10, 0, tzinfo=ZoneInfo(config.behavior.schedule.time_zone))
    luna = deployed(
        config, guild_id=ids.guild_id, bot_id=luna_bot.id, deployed_at=morning - timedelta(days=1)
    )
    engine = Engine(Tables(*({} for _ in fields(Tables))))
    engine.apply_routing(routing(ids.guild_id, luna))
    engine.handle_event(envelope("GUILD_CREATE", created, bot_id=luna_bot.id, guild_id=ids.guild_id))
    general = ids.channel_named("general").channel_id
    member = ids.members[0]
    at = morning - timedelta(hours=1)
    said = message_data(
        guild_id=ids.guild_id,
        channel_id=general,
        author=user(member.user_id, member.username),
        content="hi",
        at=at,
    )
    engine.handle_event(
        envelope("MESSAGE_CREATE", said, bot_id=luna_bot.id, guild_id=ids.guild_id, channel_id=general, at=at)
    )
    fired = engine.fire_routines(ids.guild_id, morning + timedelta(minutes=30))  # within her punctuality
    [greeting] = [d for d in fired.decisions if d.routine == "morning_greeting"]
    assert greeting.respond and greeting.channel_id == general
    assert any(r.event_id == greeting.event_id and r.target.channel_id == general for r in fired.requests)
