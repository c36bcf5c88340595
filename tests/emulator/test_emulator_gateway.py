"""The emulator's gateway spoken to directly: exact payloads in, exact frames and close codes out."""

from __future__ import annotations

import uuid

import aiohttp
import pytest
from emulator_helpers import DEFAULT_INTENTS, RawGateway, fast_config, scene

from emulator.discord import DiscordEmulator, Intent
from tests.waiting import wait_until

pytestmark = pytest.mark.stack


async def gateway(emu: DiscordEmulator, http: aiohttp.ClientSession, *, compress: bool = True) -> RawGateway:
    gw = RawGateway(http, emu.gateway_url, compress=compress)
    await gw.connect()
    return gw


async def test_hello_then_heartbeat_is_acked(emu: DiscordEmulator, http: aiohttp.ClientSession) -> None:
    gw = RawGateway(http, emu.gateway_url, compress=False)
    hello = await gw.connect()
    assert hello["d"]["heartbeat_interval"] == 1000
    await gw.send(1, None)
    assert (await gw.frame())["op"] == 11
    await gw.send(1, 42)
    assert (await gw.frame())["op"] == 11
    await gw.close()


async def test_identify_gives_ready_then_guild_create_over_zlib_stream(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu)
    gw = await gateway(emu, http)
    ready = await gw.identify(s.bot.token)
    assert ready["s"] == 1
    d = ready["d"]
    assert d["v"] == 10 and d["user"]["id"] == s.bot.id and d["user"]["bot"] is True
    assert d["guilds"] == [{"id": s.guild.id, "unavailable": True}]
    assert d["resume_gateway_url"] == emu.gateway_url
    assert d["application"]["id"] == s.bot.application_id
    create = await gw.recv()
    assert create is not None and create["t"] == "GUILD_CREATE" and create["s"] == 2
    guild = create["d"]
    assert {c["id"] for c in guild["channels"]} == {s.text.id, s.voice.id}
    assert guild["member_count"] == 3
    # Without GUILD_PRESENCES only the bot itself is listed; clients chunk the rest.
    assert [m["user"]["id"] for m in guild["members"]] == [s.bot.id]
    assert gw.binary_frames >= 3  # HELLO, READY and GUILD_CREATE all came compressed in one stream
    assert emu.stats(s.bot.id)["identifies"] == 1
    await gw.close()


async def test_dispatches_follow_intents_and_message_content_rule(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu, privileged_intents=0)
    gw = await gateway(emu, http)
    await gw.identify(s.bot.token, intents=int(Intent.GUILDS | Intent.GUILD_MESSAGES))
    await gw.dispatch("GUILD_CREATE")
    emu.add_user_reaction(
        s.text.id,
        emu.post_user_message(s.alice.id, "no intent for reactions", s.text.id)["id"],
        s.bob.id,
        "👍",
    )
    emu.post_user_message(s.alice.id, f"hey <@{s.bot.id}>", s.text.id)
    first = await gw.dispatch("MESSAGE_CREATE")
    assert first["d"]["content"] == ""  # no MESSAGE_CONTENT: hidden
    mention = await gw.recv()
    assert mention is not None and mention["t"] == "MESSAGE_CREATE"  # the reaction was not delivered
    assert mention["d"]["content"] == f"hey <@{s.bot.id}>"  # but a mention shows the content
    assert [m["id"] for m in mention["d"]["mentions"]] == [s.bot.id]
    dm = emu.post_user_message(s.alice.id, "psst", to_bot_id=s.bot.id)
    await gw.send(1, None)
    assert (await gw.frame())["op"] == 11  # no DIRECT_MESSAGES intent: nothing came
    assert dm["content"] == "psst"
    await gw.close()


async def test_direct_messages_reach_the_bot_with_content(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu, privileged_intents=0)
    gw = await gateway(emu, http)
    await gw.identify(s.bot.token, intents=int(Intent.DIRECT_MESSAGES))
    emu.post_user_message(s.alice.id, "psst", to_bot_id=s.bot.id)
    frame = await gw.dispatch("MESSAGE_CREATE")
    assert frame["d"]["content"] == "psst" and "guild_id" not in frame["d"]
    await gw.close()


async def test_reply_carries_reference_and_mentions_replied_author(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu)
    gw = await gateway(emu, http)
    await gw.identify(s.bot.token, intents=DEFAULT_INTENTS | int(Intent.MESSAGE_CONTENT))
    original = emu.post_user_message(s.bob.id, "question?", s.text.id)
    emu.post_user_message(s.alice.id, "answer", s.text.id, reply_to=original["id"])
    await gw.dispatch("MESSAGE_CREATE")
    reply = (await gw.dispatch("MESSAGE_CREATE"))["d"]
    assert reply["type"] == 19
    assert reply["message_reference"]["message_id"] == original["id"]
    assert reply["referenced_message"]["content"] == "question?"
    assert [m["id"] for m in reply["mentions"]] == [s.bob.id]
    await gw.close()


async def test_close_codes_for_bad_tokens_and_intents(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu, privileged_intents=0)
    gw = await gateway(emu, http)
    await gw.send(2, {"token": "not-a-token", "intents": 1, "properties": {}})
    assert await gw.close_code() == 4004
    gw = await gateway(emu, http)
    await gw.send(2, {"token": s.bot.token, "intents": int(Intent.MESSAGE_CONTENT), "properties": {}})
    assert await gw.close_code() == 4014
    gw = await gateway(emu, http)
    await gw.send(2, {"token": s.bot.token, "intents": 1 << 40, "properties": {}})
    assert await gw.close_code() == 4013
    gw = await gateway(emu, http)
    await gw.send(2, {"token": s.bot.token, "intents": 1, "properties": {}, "shard": [3, 2]})
    assert await gw.close_code() == 4010
    assert emu.stats(s.bot.id)["close_codes"] == {"4014": 1, "4013": 1, "4010": 1}


async def test_protocol_errors_close_the_connection(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    gw = await gateway(emu, http)
    await gw.send(3, {"status": "online"})  # presence before IDENTIFY
    assert await gw.close_code() == 4003
    gw = await gateway(emu, http)
    await gw.send(99, None)
    assert await gw.close_code() == 4001
    gw = await gateway(emu, http)
    assert gw.ws is not None
    await gw.ws.send_str("{not json")
    assert await gw.close_code() == 4002


async def test_more_than_120_sends_a_minute_closes_4008(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu)
    gw = await gateway(emu, http)
    await gw.identify(s.bot.token)
    for _ in range(125):
        if gw.ws is None or gw.ws.closed:
            break
        await gw.send(1, None)
    assert await gw.close_code() == 4008
    stats = emu.stats(s.bot.id)
    assert stats["close_codes"] == {"4008": 1}
    assert stats["gateway_sends"] == 121  # IDENTIFY + 119 heartbeats allowed + the one refused


async def test_resume_replays_missed_events_then_resumed(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu)
    gw = await gateway(emu, http)
    ready = await gw.identify(s.bot.token, intents=DEFAULT_INTENTS | int(Intent.MESSAGE_CONTENT))
    last = (await gw.dispatch("GUILD_CREATE"))["s"]
    assert emu.drop_connections(s.bot.id) == 1
    assert await gw.close_code() is not None  # dropped without a close frame
    emu.post_user_message(s.alice.id, "while you were away 1", s.text.id)
    emu.post_user_message(s.alice.id, "while you were away 2", s.text.id)
    again = await gateway(emu, http)
    await again.send(6, {"token": s.bot.token, "session_id": ready["d"]["session_id"], "seq": last})
    replayed = [await again.recv(), await again.recv(), await again.recv()]
    assert [f["t"] for f in replayed if f] == ["MESSAGE_CREATE", "MESSAGE_CREATE", "RESUMED"]
    assert [f["s"] for f in replayed if f] == [last + 1, last + 2, last + 3]
    assert [f["d"]["content"] for f in replayed[:2] if f] == [
        "while you were away 1",
        "while you were away 2",
    ]
    stats = emu.stats(s.bot.id)
    assert stats["identifies"] == 1 and stats["resumes"] == 1
    await again.close()


async def test_every_identify_starts_a_new_session_numbered_from_1(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu)
    first, second = await gateway(emu, http), await gateway(emu, http)
    one, two = await first.identify(s.bot.token), await second.identify(s.bot.token)
    assert one["s"] == two["s"] == 1
    assert one["d"]["session_id"] != two["d"]["session_id"]
    await first.close()
    await second.close()


async def test_resume_of_unknown_session_gets_invalid_session_false(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu)
    gw = await gateway(emu, http)
    await gw.send(6, {"token": s.bot.token, "session_id": "f" * 32, "seq": 3})
    frame = await gw.recv()
    assert frame is not None and frame["op"] == 9 and frame["d"] is False
    # The connection stays usable: a fresh IDENTIFY works.
    assert (await gw.identify(s.bot.token))["t"] == "READY"
    assert emu.stats(s.bot.id)["resumes_rejected"] == 1
    await gw.close()


async def test_clean_close_ends_the_session(emu: DiscordEmulator, http: aiohttp.ClientSession) -> None:
    s = scene(emu)
    gw = await gateway(emu, http)
    ready = await gw.identify(s.bot.token)
    await gw.close()  # code 1000
    again = await gateway(emu, http)
    await again.send(6, {"token": s.bot.token, "session_id": ready["d"]["session_id"], "seq": 1})
    frame = await again.recv()
    assert frame is not None and frame["op"] == 9
    await again.close()


async def test_identify_faster_than_max_concurrency_is_invalidated(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu)
    emu.configure(identify_interval_s=5.0)
    try:
        first = await gateway(emu, http)
        await first.identify(s.bot.token)
        second = await gateway(emu, http)
        await second.send(2, {"token": s.bot.token, "intents": DEFAULT_INTENTS, "properties": {}})
        frame = await second.recv()
        assert frame is not None and frame["op"] == 9 and frame["d"] is False
        # Another bucket (max_concurrency 2, shard 1) would have been allowed; this bot has 1 bucket.
        stats = emu.stats(s.bot.id)
        assert stats["identifies"] == 1 and stats["identifies_rejected"] == 1
        assert stats["session_start_limit"]["remaining"] == 999
    finally:
        emu.configure(identify_interval_s=0.0)
    await first.close()
    await second.close()


async def test_exhausted_session_starts_reset_the_token(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu, session_start_limit=1)
    gw = await gateway(emu, http)
    await gw.identify(s.bot.token)
    again = await gateway(emu, http)
    await again.send(2, {"token": s.bot.token, "intents": DEFAULT_INTENTS, "properties": {}})
    assert await again.close_code() == 4004
    assert await gw.close_code() == 4004  # the reset token also ends the live session
    assert s.bot.revoked


async def test_shards_receive_only_their_guilds(emu: DiscordEmulator, http: aiohttp.ClientSession) -> None:
    s = scene(emu)
    other = emu.add_guild("second")
    emu.add_member(other.id, s.bot.id)
    shard_of = {g: (int(g) >> 22) % 2 for g in (s.guild.id, other.id)}
    gws = []
    for shard in (0, 1):
        gw = await gateway(emu, http)
        ready = await gw.identify(s.bot.token, shard=[shard, 2])
        assert ready["d"]["shard"] == [shard, 2]
        assert {g["id"] for g in ready["d"]["guilds"]} == {g for g, sh in shard_of.items() if sh == shard}
        gws.append(gw)
    emu.post_user_message(s.alice.id, "to the right shard", s.text.id)
    frame = await gws[shard_of[s.guild.id]].dispatch("MESSAGE_CREATE")
    assert frame["d"]["channel_id"] == s.text.id
    for gw in gws:
        await gw.close()


async def test_a_bot_in_more_guilds_than_a_shard_holds_must_shard(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    # Two guilds whose snowflake timestamps put them on shards 0 and 1 of 2.
    first = uuid.uuid4().int % 10**9 * 2
    guild_ids = [emu.add_guild(f"guild-{n}", id=str((first + n) << 22)).id for n in range(2)]
    bot = emu.add_bot("sharded", guild_ids=guild_ids)
    emu.configure(max_guilds_per_shard=1, guilds_per_recommended_shard=1)
    try:
        async with http.get(f"{emu.api_url}/gateway/bot", headers={"Authorization": f"Bot {bot.token}"}) as r:
            assert (await r.json())["shards"] == 2
        gw = await gateway(emu, http)
        await gw.send(2, {"token": bot.token, "intents": 1, "properties": {}})  # no shard: [0, 1]
        assert await gw.close_code() == 4011
        for shard in (0, 1):
            sharded = await gateway(emu, http)
            ready = await sharded.identify(bot.token, shard=[shard, 2])
            assert [g["id"] for g in ready["d"]["guilds"]] == [guild_ids[shard]]
            await sharded.close()
    finally:
        emu.configure(max_guilds_per_shard=2500, guilds_per_recommended_shard=1000)


async def test_voice_state_update_answers_with_voice_server_update(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu)
    gw = await gateway(emu, http)
    ready = await gw.identify(s.bot.token)
    await gw.send(
        4, {"guild_id": s.guild.id, "channel_id": s.voice.id, "self_mute": False, "self_deaf": True}
    )
    state = (await gw.dispatch("VOICE_STATE_UPDATE"))["d"]
    assert state["user_id"] == s.bot.id and state["channel_id"] == s.voice.id and state["self_deaf"] is True
    assert state["session_id"] == ready["d"]["session_id"]
    server = (await gw.dispatch("VOICE_SERVER_UPDATE"))["d"]
    assert server["guild_id"] == s.guild.id and server["token"] and server["endpoint"]
    recorded = emu.actions(bot_id=s.bot.id, kind="voice_state")
    assert [a.payload["channel_id"] for a in recorded] == [s.voice.id]
    await gw.close()


async def test_user_voice_and_member_join_are_dispatched(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu)
    gw = await gateway(emu, http)
    await gw.identify(s.bot.token, intents=DEFAULT_INTENTS | int(Intent.GUILD_MEMBERS))
    emu.user_voice(s.guild.id, s.alice.id, s.voice.id)
    state = (await gw.dispatch("VOICE_STATE_UPDATE"))["d"]
    assert state["user_id"] == s.alice.id and state["channel_id"] == s.voice.id
    carol = emu.add_user("carol")
    emu.add_member(s.guild.id, carol.id)
    joined = (await gw.dispatch("GUILD_MEMBER_ADD"))["d"]
    assert joined["user"]["id"] == carol.id and joined["guild_id"] == s.guild.id
    await gw.close()


async def test_request_guild_members_answers_with_chunks(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu)
    gw = await gateway(emu, http)
    await gw.identify(s.bot.token, intents=DEFAULT_INTENTS | int(Intent.GUILD_MEMBERS))
    await gw.send(8, {"guild_id": s.guild.id, "query": "", "limit": 0, "nonce": "n1"})
    chunk = (await gw.dispatch("GUILD_MEMBERS_CHUNK"))["d"]
    assert chunk["nonce"] == "n1" and chunk["chunk_count"] == 1
    assert {m["user"]["id"] for m in chunk["members"]} == {s.alice.id, s.bob.id, s.bot.id}
    await gw.send(8, {"guild_id": s.guild.id, "query": "al", "limit": 10})
    chunk = (await gw.dispatch("GUILD_MEMBERS_CHUNK"))["d"]
    assert [m["user"]["id"] for m in chunk["members"]] == [s.alice.id]
    await gw.close()


async def test_presence_update_is_recorded_and_seen_by_other_bots(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu)
    watcher = emu.add_bot("watcher", guild_ids=[s.guild.id])
    gw = await gateway(emu, http)
    await gw.identify(s.bot.token)
    watching = await gateway(emu, http)
    await watching.identify(watcher.token, intents=DEFAULT_INTENTS | int(Intent.GUILD_PRESENCES))
    await gw.send(
        3, {"since": None, "activities": [{"name": "chess", "type": 0}], "status": "idle", "afk": False}
    )
    update = (await watching.dispatch("PRESENCE_UPDATE"))["d"]
    assert update["user"]["id"] == s.bot.id and update["status"] == "idle"
    assert [a.payload["status"] for a in emu.actions(bot_id=s.bot.id, kind="presence")] == ["idle"]
    await gw.close()
    await watching.close()


async def test_reconnect_request_sends_op_7(emu: DiscordEmulator, http: aiohttp.ClientSession) -> None:
    s = scene(emu)
    gw = await gateway(emu, http)
    await gw.identify(s.bot.token)
    await gw.dispatch("GUILD_CREATE")
    assert await emu.send_reconnect(s.bot.id) == 1
    frame = await gw.recv()
    assert frame is not None and frame["op"] == 7
    await gw.close()


async def test_revoke_closes_gateway_with_4004(emu: DiscordEmulator, http: aiohttp.ClientSession) -> None:
    s = scene(emu)
    gw = await gateway(emu, http)
    await gw.identify(s.bot.token)
    assert await emu.revoke_token(s.bot.id) == 1
    assert await gw.close_code() == 4004
    again = await gateway(emu, http)
    await again.send(2, {"token": s.bot.token, "intents": 1, "properties": {}})
    assert await again.close_code() == 4004


async def test_silent_client_is_closed_4009_and_loses_its_session(http: aiohttp.ClientSession) -> None:
    quick = DiscordEmulator(fast_config(heartbeat_interval_ms=100, heartbeat_grace_s=0.0))
    await quick.start()
    try:
        s = scene(quick)
        gw = await gateway(quick, http)
        ready = await gw.identify(s.bot.token)
        assert await gw.close_code() == 4009  # nothing sent within 1.5 heartbeat intervals
        again = await gateway(quick, http)
        await again.send(6, {"token": s.bot.token, "session_id": ready["d"]["session_id"], "seq": 2})
        assert (await again.frame())["op"] == 9
    finally:
        await quick.stop()


async def test_dropped_session_expires_after_resume_timeout(http: aiohttp.ClientSession) -> None:
    quick = DiscordEmulator(fast_config(resume_timeout_s=0.1))
    await quick.start()
    try:
        s = scene(quick)
        gw = await gateway(quick, http)
        ready = await gw.identify(s.bot.token)
        assert quick.drop_connections(s.bot.id) == 1
        await wait_until(lambda: quick.stats(s.bot.id)["sessions"] == 0, "the dropped session to expire")
        late = await gateway(quick, http)
        await late.send(6, {"token": s.bot.token, "session_id": ready["d"]["session_id"], "seq": 2})
        assert (await late.frame())["op"] == 9
        assert quick.stats(s.bot.id)["sessions"] == 0
    finally:
        await quick.stop()
