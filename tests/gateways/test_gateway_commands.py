"""Registering application commands against the emulator, with the real Redis: a guild's set is written only
when it changed, a guild whose deployments went away is emptied, and a new owner of the bot (another runner,
a restart) knows what was registered."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from emulator.discord import DiscordEmulator
from gateways.commands import CommandRegistry
from gateways.rest import RestClients
from gateways.shard import BotCredentials
from models.agent import AgentConfig, AgentMode
from models.commands import guild_commands
from models.tools import COMMANDS_BY_TOOL, REPORT_COMMAND, Tool
from tests.gateways.conftest import World

pytestmark = pytest.mark.stack


def deployed(*tools: Tool) -> AgentConfig:
    commands = [command for tool in tools for command in COMMANDS_BY_TOOL.get(tool, ())]
    return AgentConfig(
        name="Bot", mode=AgentMode.utility, enabled_tools=list(tools), enabled_commands=commands
    )


async def test_a_guild_set_is_written_once_per_change_and_emptied_when_undeployed(
    emulator: DiscordEmulator, world: World, redis_client: aioredis.Redis, rest: RestClients
) -> None:
    other = emulator.add_guild("second")
    emulated = emulator.add_bot(f"cmd-{uuid.uuid4().hex[:6]}", guild_ids=[world.guild_id, other.id])
    bot = BotCredentials(bot_id=emulated.id, token_id=uuid.uuid4(), token=SecretStr(emulated.token))
    prefix = f"test-{uuid.uuid4().hex[:8]}."
    registry = CommandRegistry(redis_client, prefix, rest)

    def names(guild_id: str) -> set[str]:
        return {command["name"] for command in emulator.registered_commands(bot.bot_id, guild_id)}

    both = guild_commands([deployed(Tool.music, Tool.moderation)])
    games = guild_commands([deployed(Tool.games)])
    assert await registry.sync(bot, {world.guild_id: both, other.id: games}) == 2
    assert names(world.guild_id) == {
        *COMMANDS_BY_TOOL[Tool.music],
        *COMMANDS_BY_TOOL[Tool.moderation],
        REPORT_COMMAND,
    }
    assert names(other.id) == {*COMMANDS_BY_TOOL[Tool.games], REPORT_COMMAND}
    [registered_ban] = [
        c for c in emulator.registered_commands(bot.bot_id, world.guild_id) if c["name"] == "ban"
    ]
    assert registered_ban["default_member_permissions"] == str(1 << 2)
    assert await registry.sync(bot, {world.guild_id: both, other.id: games}) == 0  # unchanged: nothing sent

    # Music disabled in the first guild, the second guild's deployment gone; a fresh registry (a restarted
    # runner) starts from what Redis says was registered.
    restarted = CommandRegistry(redis_client, prefix, rest)
    moderation = guild_commands([deployed(Tool.moderation)])
    assert await restarted.sync(bot, {world.guild_id: moderation}) == 2
    assert (
        names(world.guild_id) == {*COMMANDS_BY_TOOL[Tool.moderation], REPORT_COMMAND}
        and names(other.id) == set()
    )
    assert await restarted.sync(bot, {world.guild_id: moderation}) == 0
    upserts = emulator.actions(bot_id=bot.bot_id, kind="command_upsert")
    assert len(upserts) == 4
    await redis_client.delete(f"{prefix}gw:commands:{bot.bot_id}")


async def test_a_set_discord_refuses_is_not_sent_again_until_it_changes(
    emulator: DiscordEmulator, redis_client: aioredis.Redis, rest: RestClients
) -> None:
    emulated = emulator.add_bot(f"cmd-{uuid.uuid4().hex[:6]}")
    bot = BotCredentials(bot_id=emulated.id, token_id=uuid.uuid4(), token=SecretStr(emulated.token))
    registry = CommandRegistry(redis_client, f"test-{uuid.uuid4().hex[:8]}.", rest)
    elsewhere = emulator.add_guild("not the bot's").id  # Discord refuses: the bot is not in it
    games = guild_commands([deployed(Tool.games)])
    assert await registry.sync(bot, {elsewhere: games}) == 0
    requests = emulator.stats(bot.bot_id)["rest_requests"]
    assert await registry.sync(bot, {elsewhere: games}) == 0
    assert emulator.stats(bot.bot_id)["rest_requests"] == requests
    assert await registry.sync(bot, {elsewhere: guild_commands([deployed(Tool.music)])}) == 0
    assert emulator.stats(bot.bot_id)["rest_requests"] == requests + 1  # a new set is tried


async def test_a_set_every_guild_agrees_on_is_registered_globally_and_split_when_they_differ(
    emulator: DiscordEmulator, world: World, redis_client: aioredis.Redis, rest: RestClients
) -> None:
    other = emulator.add_guild("third")
    emulator.add_member(other.id, world.user_id)
    other_channel = emulator.add_channel(other.id, "general")
    emulated = emulator.add_bot(f"cmd-{uuid.uuid4().hex[:6]}", guild_ids=[world.guild_id, other.id])
    bot = BotCredentials(bot_id=emulated.id, token_id=uuid.uuid4(), token=SecretStr(emulated.token))
    registry = CommandRegistry(redis_client, f"test-{uuid.uuid4().hex[:8]}.", rest)

    def names(guild_id: str | None) -> set[str]:
        return {command["name"] for command in emulator.registered_commands(bot.bot_id, guild_id)}

    music = guild_commands([deployed(Tool.music)])
    assert await registry.sync(bot, {world.guild_id: music, other.id: music}) == 1
    assert names(None) == {*COMMANDS_BY_TOOL[Tool.music], REPORT_COMMAND}
    assert names(world.guild_id) == names(other.id) == set()
    for channel_id in (world.channel_id, other_channel.id):  # a global command works in every guild
        emulator.invoke_command(bot.bot_id, world.user_id, channel_id, "play")
    assert await registry.sync(bot, {world.guild_id: music, other.id: music}) == 0

    # The guilds disagree: each gets its own set, then the global set is emptied.
    games = guild_commands([deployed(Tool.games)])
    assert await registry.sync(bot, {world.guild_id: music, other.id: games}) == 3
    assert names(None) == set()
    assert names(world.guild_id) == {*COMMANDS_BY_TOOL[Tool.music], REPORT_COMMAND}
    assert names(other.id) == {*COMMANDS_BY_TOOL[Tool.games], REPORT_COMMAND}
    scopes = [a.guild_id for a in emulator.actions(bot_id=bot.bot_id, kind="command_upsert")]
    assert scopes == [None, world.guild_id, other.id, None]
