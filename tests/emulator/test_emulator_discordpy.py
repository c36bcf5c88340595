"""The real discord.py, unmodified, pointed at the emulator."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncIterator

import aiohttp
import discord
import pytest
import yarl
from discord import app_commands
from emulator_helpers import Scene, fast_config, scene

from emulator.discord import DiscordEmulator
from tests.waiting import wait_until

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
async def emu() -> AsyncIterator[DiscordEmulator]:
    emulator = DiscordEmulator(fast_config())
    await emulator.start()
    base, gateway = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    # The only change a production client needs: where Discord is.
    discord.http.Route.BASE = emulator.api_url
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(emulator.gateway_url)
    yield emulator
    discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = base, gateway
    await emulator.stop()


def make_client(*, content: bool = True, members: bool = True) -> discord.Client:
    intents = discord.Intents.default()
    intents.message_content = content
    intents.members = members
    return discord.Client(intents=intents, guild_ready_timeout=0.1)


@contextlib.asynccontextmanager
async def running(client: discord.Client, token: str) -> AsyncIterator[asyncio.Task[None]]:
    await client.login(token)
    task = asyncio.create_task(client.connect())
    try:
        await asyncio.wait_for(client.wait_until_ready(), 10)
        yield task
    finally:
        await client.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)


async def test_zlib_stream_is_what_discordpy_negotiates() -> None:
    # The tests below therefore exercise the emulator's zlib-stream transport.
    assert discord.utils._ActiveDecompressionContext.COMPRESSION_TYPE == "zlib-stream"


async def test_login_ready_guild_members_and_on_message(emu: DiscordEmulator) -> None:
    s = scene(emu)
    client = make_client()
    received: asyncio.Queue[discord.Message] = asyncio.Queue()

    @client.event
    async def on_message(message: discord.Message) -> None:
        await received.put(message)

    async with running(client, s.bot.token):
        assert client.user is not None and str(client.user.id) == s.bot.id
        guild = client.get_guild(int(s.guild.id))
        assert guild is not None
        assert {c.name for c in guild.channels} == {"general", "Lounge"}
        assert guild.get_member(int(s.alice.id)) is not None  # members arrived by chunking (op 8)
        emu.post_user_message(s.alice.id, "hello bot", s.text.id)
        message = await asyncio.wait_for(received.get(), 5)
        assert message.content == "hello bot" and str(message.author.id) == s.alice.id
        assert message.channel.id == int(s.text.id)
        # discord.py heartbeats right after HELLO; latency is finite once ACKed
        await wait_until(lambda: client.latency != float("inf"), "the first heartbeat ACK")
    assert emu.stats(s.bot.id)["identifies"] == 1


async def test_channel_send_is_recorded_exactly_once(emu: DiscordEmulator) -> None:
    s = scene(emu)
    client = make_client()
    async with running(client, s.bot.token):
        channel = client.get_channel(int(s.text.id))
        assert isinstance(channel, discord.TextChannel)
        sent = await channel.send("pong")
        reply = await sent.reply("and a reply")
    records = emu.actions(bot_id=s.bot.id)
    assert [(a.kind, a.payload["content"]) for a in records] == [
        ("message", "pong"),
        ("reply", "and a reply"),
    ]
    assert records[0].payload["id"] == str(sent.id) and records[1].payload["id"] == str(reply.id)
    assert [m["content"] for m in emu.history(s.text.id)] == ["and a reply", "pong"]


async def test_reaction_typing_timeout_nick_ban_kick_are_recorded(emu: DiscordEmulator) -> None:
    s = scene(emu)
    carol = emu.add_user("carol")
    emu.add_member(s.guild.id, carol.id)
    client = make_client()
    async with running(client, s.bot.token):
        guild = client.get_guild(int(s.guild.id))
        assert guild is not None
        channel = guild.get_channel(int(s.text.id))
        assert isinstance(channel, discord.TextChannel)
        user_message = emu.post_user_message(s.alice.id, "react to me", s.text.id)
        message = await channel.fetch_message(int(user_message["id"]))
        await message.add_reaction("👍")
        async with channel.typing():
            pass
        alice, bob, carol_member = (guild.get_member(int(u)) for u in (s.alice.id, s.bob.id, carol.id))
        assert alice is not None and bob is not None and carol_member is not None
        await alice.timeout(datetime.timedelta(minutes=10), reason="calm down")
        assert guild.me is not None
        await guild.me.edit(nick="Sage")
        await bob.ban(reason="spam", delete_message_seconds=0)
        await carol_member.kick()
    kinds = [a.kind for a in emu.actions(bot_id=s.bot.id)]
    assert kinds == ["reaction", "typing", "timeout", "nick", "ban", "kick"]
    timeout = emu.actions(bot_id=s.bot.id, kind="timeout")[0]
    assert timeout.payload["user_id"] == s.alice.id and timeout.payload["reason"] == "calm down"
    assert emu.actions(bot_id=s.bot.id, kind="nick")[0].payload["nick"] == "Sage"
    assert s.guild.members[s.alice.id].communication_disabled_until is not None
    assert s.bob.id in s.guild.bans and carol.id not in s.guild.members


async def test_slash_commands_sync_invoke_and_respond(emu: DiscordEmulator) -> None:
    s = scene(emu)
    client = make_client()
    tree = app_commands.CommandTree(client)

    @tree.command(name="ping", description="answers pong")
    async def ping(interaction: discord.Interaction, word: str) -> None:
        await interaction.response.send_message(f"pong {word}")

    @tree.command(name="slow", description="thinks first")
    async def slow(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.edit_original_response(content="thought about it")
        await interaction.followup.send("and one more thing")

    async with running(client, s.bot.token):
        synced = await tree.sync()
        assert {c.name for c in synced} == {"ping", "slow"}
        since = emu.world.actions.last_seq
        emu.invoke_command(
            s.bot.id, s.alice.id, s.text.id, "ping", [{"name": "word", "type": 3, "value": "hi"}]
        )
        done = await emu.wait_actions(since, s.bot.id, "interaction_response", count=1)
        assert done[0].payload["data"]["content"] == "pong hi"
        since = emu.world.actions.last_seq
        emu.invoke_command(s.bot.id, s.alice.id, s.text.id, "slow")
        done = await emu.wait_actions(since, s.bot.id, "interaction_response", count=3)
    assert [a.payload["stage"] for a in done] == ["callback", "edit_original", "followup"]
    assert done[0].payload["type"] == 5
    assert [m["content"] for m in emu.history(s.text.id)][:2] == ["and one more thing", "thought about it"]
    assert len(emu.actions(bot_id=s.bot.id, kind="command_upsert")) == 1


async def test_revoked_token_fails_login_and_closes_gateway_4004(emu: DiscordEmulator) -> None:
    s = scene(emu)
    client = make_client()
    await client.login(s.bot.token)
    task = asyncio.create_task(client.connect())
    await asyncio.wait_for(client.wait_until_ready(), 10)
    await emu.revoke_token(s.bot.id)
    with pytest.raises(discord.ConnectionClosed) as closed:
        await asyncio.wait_for(task, 10)
    assert closed.value.code == 4004
    stats = emu.stats(s.bot.id)
    assert stats["identifies"] == 1 and stats["resumes"] == 0  # discord.py did not try again
    await client.close()
    with pytest.raises(discord.LoginFailure):
        await make_client().login(s.bot.token)


async def test_missing_privileged_intent_raises_privileged_intents_required(emu: DiscordEmulator) -> None:
    s = scene(emu, privileged_intents=0)
    client = make_client(content=True, members=False)
    await client.login(s.bot.token)
    with pytest.raises(discord.PrivilegedIntentsRequired):
        await asyncio.wait_for(client.connect(), 10)
    await client.close()
    assert emu.stats(s.bot.id)["close_codes"] == {"4014": 1}


async def test_dropped_connection_resumes_and_gets_missed_events(emu: DiscordEmulator) -> None:
    s = scene(emu)
    client = make_client()
    received: asyncio.Queue[str] = asyncio.Queue()
    resumed = asyncio.Event()

    @client.event
    async def on_message(message: discord.Message) -> None:
        await received.put(message.content)

    @client.event
    async def on_resumed() -> None:
        resumed.set()

    async with running(client, s.bot.token):
        assert emu.drop_connections(s.bot.id) == 1
        emu.post_user_message(s.alice.id, "sent while disconnected", s.text.id)
        assert await asyncio.wait_for(received.get(), 10) == "sent while disconnected"
        await asyncio.wait_for(resumed.wait(), 10)
        await emu.send_reconnect(s.bot.id)  # op 7: discord.py closes and resumes again
        await wait_until(lambda: emu.stats(s.bot.id)["resumes"] == 2, "the resume after op 7")
        emu.post_user_message(s.alice.id, "after op 7", s.text.id)
        assert await asyncio.wait_for(received.get(), 10) == "after op 7"
    stats = emu.stats(s.bot.id)
    assert stats["identifies"] == 1 and stats["resumes"] == 2


async def test_forced_429_is_waited_out_and_the_message_recorded_once(emu: DiscordEmulator) -> None:
    s: Scene = scene(emu)
    client = make_client()
    emu.configure(route_limits={"POST /channels/{channel_id}/messages": (1, 0.5)})
    try:
        async with running(client, s.bot.token):
            channel = client.get_channel(int(s.text.id))
            assert isinstance(channel, discord.TextChannel)
            # Another process using the same token spends the bucket discord.py does not know about.
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    f"{emu.api_url}/channels/{s.text.id}/messages",
                    json={"content": "elsewhere"},
                    headers={"Authorization": f"Bot {s.bot.token}"},
                ) as response,
            ):
                assert response.status == 200
            sent = await channel.send("after the wait")
    finally:
        emu.configure(route_limits={})
    assert sent.content == "after the wait"
    assert [a.payload["content"] for a in emu.actions(bot_id=s.bot.id, kind="message")] == [
        "elsewhere",
        "after the wait",
    ]
    assert emu.stats(s.bot.id)["rest_429"] >= 1


async def test_auto_sharded_client_uses_gateway_bot(emu: DiscordEmulator) -> None:
    s = scene(emu)
    intents = discord.Intents.default()
    intents.message_content = True
    client = discord.AutoShardedClient(
        intents=intents, guild_ready_timeout=0.1, chunk_guilds_at_startup=False
    )
    async with running(client, s.bot.token):
        assert client.shard_count == 1  # from GET /gateway/bot
        assert client.get_guild(int(s.guild.id)) is not None
        assert emu.stats(s.bot.id)["rest_requests"] == 3  # users/@me, applications/@me, gateway/bot
