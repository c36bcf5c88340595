"""The emulator's REST API and control API over plain HTTP: auth, rate limits, effects, records."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from emulator_helpers import RawGateway, Scene, register, scene

from emulator.discord import DiscordEmulator, EmulatorControl, EmulatorError, rules
from emulator.discord.errors import ApiError
from emulator.discord.intents import Intent
from tests.waiting import wait_until

pytestmark = pytest.mark.stack


@pytest.fixture
async def control(emu: DiscordEmulator) -> AsyncIterator[EmulatorControl]:
    async with EmulatorControl(emu.base_url) as client:
        yield client


class Api:
    """Raw REST calls as one bot: status, headers and parsed body."""

    def __init__(self, http: aiohttp.ClientSession, emu: DiscordEmulator, token: str | None) -> None:
        self.http, self.emu, self.token = http, emu, token

    async def __call__(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any, Any]:
        headers = {"Authorization": f"Bot {self.token}"} if self.token else {}
        async with self.http.request(method, self.emu.api_url + path, json=body, headers=headers, **kw) as r:
            data = await r.json(content_type=None) if r.status != 204 else None
            return r.status, r.headers, data


async def test_json_content_type_is_exact_and_identity_routes_work(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu)
    api = Api(http, emu, s.bot.token)
    status, headers, me = await api("GET", "/users/@me")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert me["id"] == s.bot.id and me["bot"] is True
    status, _, app = await api("GET", "/oauth2/applications/@me")
    assert status == 200 and app["id"] == s.bot.application_id
    status, _, gateway = await api("GET", "/gateway/bot")
    assert gateway["url"] == emu.gateway_url and gateway["shards"] == 1
    assert gateway["session_start_limit"] == {
        "total": 1000,
        "remaining": 1000,
        "reset_after": 0,
        "max_concurrency": 1,
    }
    status, _, _ = await Api(http, emu, None)("GET", "/gateway")
    assert status == 200


async def test_unknown_or_revoked_tokens_get_401_and_count_as_invalid(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu)
    before = emu.invalid_requests()["counts"].get("127.0.0.1", 0)
    status, _, body = await Api(http, emu, "nope")("GET", "/users/@me")
    assert status == 401 and body == {"message": "401: Unauthorized", "code": 0}
    await emu.revoke_token(s.bot.id)
    status, _, _ = await Api(http, emu, s.bot.token)(
        "POST", f"/channels/{s.text.id}/messages", {"content": "x"}
    )
    assert status == 401
    assert emu.invalid_requests()["counts"]["127.0.0.1"] == before + 2
    assert emu.stats(s.bot.id)["rest_401"] == 1
    assert emu.actions(bot_id=s.bot.id) == []


async def test_route_bucket_429_has_discord_headers_and_body(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu)
    api = Api(http, emu, s.bot.token)
    emu.configure(route_limits={"POST /channels/{channel_id}/messages": (2, 30.0)})
    try:
        first = await api("POST", f"/channels/{s.text.id}/messages", {"content": "1"})
        second = await api("POST", f"/channels/{s.text.id}/messages", {"content": "2"})
        status, headers, body = await api("POST", f"/channels/{s.text.id}/messages", {"content": "3"})
        other_channel = emu.add_channel(s.guild.id, "other")
        elsewhere = await api("POST", f"/channels/{other_channel.id}/messages", {"content": "4"})
    finally:
        emu.configure(route_limits={})
    assert first[0] == second[0] == 200
    assert first[1]["X-RateLimit-Remaining"] == "1" and second[1]["X-RateLimit-Remaining"] == "0"
    assert first[1]["X-RateLimit-Bucket"] == second[1]["X-RateLimit-Bucket"]
    assert status == 429 and body["global"] is False and 0 < body["retry_after"] <= 30
    assert headers["Retry-After"] and headers["X-RateLimit-Scope"] == "user" and headers["Via"]
    assert elsewhere[0] == 200  # another channel is another bucket (major parameter)
    assert [a.payload["content"] for a in emu.actions(bot_id=s.bot.id)] == ["1", "2", "4"]
    assert emu.stats(s.bot.id)["rest_429"] == 1


async def test_global_limit_429_is_marked_global(emu: DiscordEmulator, http: aiohttp.ClientSession) -> None:
    s = scene(emu, rest_global_limit=2)
    api = Api(http, emu, s.bot.token)
    results = [await api("GET", "/users/@me") for _ in range(3)]
    assert [r[0] for r in results] == [200, 200, 429]
    assert results[2][2]["global"] is True and results[2][1]["X-RateLimit-Global"] == "true"


async def test_interaction_callback_is_exempt_from_the_global_limit(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu, rest_global_limit=1)
    api = Api(http, emu, s.bot.token)
    assert (await api("GET", "/users/@me"))[0] == 200
    register(emu, s, "ping")
    interaction = emu.invoke_command(s.bot.id, s.alice.id, s.text.id, "ping")
    status, _, body = await Api(http, emu, None)(
        "POST",
        f"/interactions/{interaction['id']}/{interaction['token']}/callback?with_response=1",
        {"type": 4, "data": {"content": "pong"}},
    )
    assert status == 200 and body["resource"]["message"]["content"] == "pong"
    again = await Api(http, emu, None)(
        "POST", f"/interactions/{interaction['id']}/{interaction['token']}/callback", {"type": 4, "data": {}}
    )
    assert again[0] == 400 and again[2]["code"] == 40060  # already acknowledged
    recorded = emu.actions(bot_id=s.bot.id, kind="interaction_response")
    assert [a.payload["data"]["content"] for a in recorded] == ["pong"]


async def test_deferred_interaction_then_edit_original_and_followup(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu)
    gw = RawGateway(http, emu.gateway_url)
    await gw.connect()
    await gw.identify(s.bot.token)
    register(emu, s, "slow")
    interaction = emu.invoke_command(
        s.bot.id, s.alice.id, s.text.id, "slow", [{"name": "n", "type": 4, "value": 3}]
    )
    created = (await gw.dispatch("INTERACTION_CREATE"))["d"]
    assert created["data"]["name"] == "slow" and created["data"]["options"][0]["value"] == 3
    assert created["member"]["user"]["id"] == s.alice.id and created["token"] == interaction["token"]
    anon = Api(http, emu, None)
    assert (await anon("POST", f"/interactions/{created['id']}/{created['token']}/callback", {"type": 5}))[
        0
    ] == 204
    app = s.bot.application_id
    status, _, edited = await anon(
        "PATCH", f"/webhooks/{app}/{created['token']}/messages/@original", {"content": "done"}
    )
    assert status == 200 and edited["content"] == "done" and not edited["flags"] & 128
    status, _, follow = await anon("POST", f"/webhooks/{app}/{created['token']}", {"content": "more"})
    assert status == 200 and follow["content"] == "more"
    stages = [a.payload["stage"] for a in emu.actions(bot_id=s.bot.id, kind="interaction_response")]
    assert stages == ["callback", "edit_original", "followup"]
    await gw.close()


async def test_bot_message_is_recorded_once_and_dispatched_to_other_bots(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu)
    other = emu.add_bot("other", guild_ids=[s.guild.id])
    gw = RawGateway(http, emu.gateway_url)
    await gw.connect()
    await gw.identify(other.token, intents=(1 << 9) | (1 << 15) | 1)
    api = Api(http, emu, s.bot.token)
    status, _, message = await api(
        "POST",
        f"/channels/{s.text.id}/messages",
        {"content": f"hello <@{other.id}>", "nonce": "n-1", "enforce_nonce": True},
    )
    assert status == 200 and message["author"]["id"] == s.bot.id
    seen = (await gw.dispatch("MESSAGE_CREATE"))["d"]
    assert seen["id"] == message["id"] and seen["content"] == f"hello <@{other.id}>"
    # A retry with the same nonce returns the same message instead of posting twice.
    _, _, retry = await api(
        "POST",
        f"/channels/{s.text.id}/messages",
        {"content": f"hello <@{other.id}>", "nonce": "n-1", "enforce_nonce": True},
    )
    assert retry["id"] == message["id"]
    records = emu.actions(bot_id=s.bot.id, kind="message")
    assert len(records) == 1 and records[0].channel_id == s.text.id and records[0].guild_id == s.guild.id
    history = emu.history(s.text.id)
    assert [m["id"] for m in history] == [message["id"]]
    await gw.close()


async def test_a_native_poll_is_validated_voted_on_and_closed_with_its_results(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu)
    gw = RawGateway(http, emu.gateway_url)
    await gw.connect()
    await gw.identify(s.bot.token, intents=(1 << 9) | (1 << 15) | 1)
    api = Api(http, emu, s.bot.token)
    poll = {
        "question": {"text": "Snack?"},
        "answers": [{"poll_media": {"text": "boba"}}, {"poll_media": {"text": "mochi"}}],
    }
    too_long = {**poll, "answers": [{"poll_media": {"text": "x" * 56}}]}
    status, _, error = await api("POST", f"/channels/{s.text.id}/messages", {"poll": too_long})
    assert status == 400 and "poll.answers.0.poll_media.text" in error["errors"]
    status, _, error = await api("POST", f"/channels/{s.text.id}/messages", {"poll": {**poll, "duration": 0}})
    assert status == 400 and "poll.duration" in error["errors"]
    status, _, message = await api("POST", f"/channels/{s.text.id}/messages", {"poll": poll})
    assert status == 200 and [a["answer_id"] for a in message["poll"]["answers"]] == [1, 2]
    assert message["poll"]["results"]["is_finalized"] is False
    emu.vote_poll(s.text.id, message["id"], s.alice.id, 1)
    emu.vote_poll(s.text.id, message["id"], s.bob.id, 1)
    emu.vote_poll(s.text.id, message["id"], s.bob.id, 2)  # a single-choice poll keeps the latest vote
    emu.end_poll(s.text.id, message["id"])
    update = await gw.dispatch("MESSAGE_UPDATE")
    results = update["d"]["poll"]["results"]
    assert results["is_finalized"] is True
    assert [(c["id"], c["count"]) for c in results["answer_counts"]] == [(1, 1), (2, 1)]
    with pytest.raises(ApiError, match="already ended"):
        emu.end_poll(s.text.id, message["id"])
    await gw.close()


async def test_moderation_and_persona_effects_are_recorded(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu)
    api = Api(http, emu, s.bot.token)
    g = s.guild.id
    msg = emu.post_user_message(s.alice.id, "spam", s.text.id)
    assert (await api("PUT", f"/channels/{s.text.id}/messages/{msg['id']}/reactions/%F0%9F%91%8D/@me"))[
        0
    ] == 204
    assert (await api("POST", f"/channels/{s.text.id}/typing"))[0] == 204
    until = "2099-01-01T00:00:00+00:00"
    assert (await api("PATCH", f"/guilds/{g}/members/{s.alice.id}", {"communication_disabled_until": until}))[
        0
    ] == 400
    status, _, member = await api("PATCH", f"/guilds/{g}/members/{s.alice.id}", {"nick": "Al"})
    assert status == 200 and member["nick"] == "Al"
    status, _, me = await api("PATCH", f"/guilds/{g}/members/@me", {"nick": "Sage", "bio": "wise"})
    assert status == 200 and me["nick"] == "Sage"
    assert (await api("PUT", f"/guilds/{g}/bans/{s.alice.id}", {"delete_message_seconds": 3600}))[0] == 204
    assert (await api("DELETE", f"/guilds/{g}/bans/{s.alice.id}"))[0] == 204
    assert (await api("DELETE", f"/guilds/{g}/members/{s.bob.id}"))[0] == 204
    assert (await api("DELETE", f"/guilds/{g}/members/{s.bob.id}"))[0] == 404
    kinds = [a.kind for a in emu.actions(bot_id=s.bot.id)]
    assert kinds == ["reaction", "typing", "nick", "persona", "ban", "unban", "kick"]
    ban = emu.actions(bot_id=s.bot.id, kind="ban")[0]
    assert ban.payload["deleted_message_ids"] == [msg["id"]]  # the spam went with the ban
    assert set(s.guild.members) == {s.bot.id}


async def test_nobody_at_or_above_the_bots_highest_role_is_moderated(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    guild = emu.add_guild("ranked", roles=[{"name": "Moderator"}])
    [moderator_role] = [r for r, role in guild.roles.items() if role["name"] == "Moderator"]
    bot = emu.add_bot("rankbot", guild_ids=[guild.id])
    mod, member = emu.add_user("mod"), emu.add_user("member")
    emu.add_member(guild.id, mod.id, roles=[moderator_role])  # above the bot's managed role
    emu.add_member(guild.id, member.id)
    api = Api(http, emu, bot.token)
    for method, path in [("PUT", "bans/{}"), ("DELETE", "members/{}")]:
        status, _, body = await api(method, f"/guilds/{guild.id}/{path.format(mod.id)}", {})
        assert status == 403 and body["code"] == 50013
    assert (await api("PUT", f"/guilds/{guild.id}/bans/{guild.owner_id}", {}))[0] == 403
    assert (await api("PUT", f"/guilds/{guild.id}/bans/{member.id}", {}))[0] == 204


async def test_bot_outside_a_guild_gets_403_missing_access(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu)
    outsider = emu.add_bot("outsider")
    status, _, body = await Api(http, emu, outsider.token)(
        "POST", f"/channels/{s.text.id}/messages", {"content": "x"}
    )
    assert status == 403 and body["code"] == 50001
    status, _, body = await Api(http, emu, outsider.token)("GET", "/channels/999/messages")
    assert status == 404 and body["code"] == 10003
    status, _, body = await Api(http, emu, outsider.token)("GET", f"/guilds/{s.guild.id}/channels")
    assert status == 403 and body["code"] == 50001


async def test_a_member_bot_lists_the_guilds_channels(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu)
    status, _, channels = await Api(http, emu, s.bot.token)("GET", f"/guilds/{s.guild.id}/channels")
    assert status == 200
    assert [(c["id"], c["name"], c["type"], c["guild_id"]) for c in channels] == [
        (s.text.id, "general", 0, s.guild.id),
        (s.voice.id, "Lounge", 2, s.guild.id),
    ]


async def test_commands_overwrite_keeps_ids_and_dm_channels_are_reused(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu)
    api = Api(http, emu, s.bot.token)
    app = s.bot.application_id
    _, _, first = await api("PUT", f"/applications/{app}/commands", [{"name": "ping", "description": "p"}])
    _, _, second = await api(
        "PUT",
        f"/applications/{app}/commands",
        [{"name": "ping", "description": "p2"}, {"name": "roll", "description": "r"}],
    )
    assert second[0]["id"] == first[0]["id"] and {c["name"] for c in second} == {"ping", "roll"}
    status, _, guild_cmd = await api(
        "POST", f"/applications/{app}/guilds/{s.guild.id}/commands", {"name": "local", "description": "l"}
    )
    assert status == 201 and guild_cmd["guild_id"] == s.guild.id
    interaction = emu.invoke_command(s.bot.id, s.alice.id, s.text.id, "local")
    assert interaction["data"]["id"] == guild_cmd["id"] and interaction["data"]["guild_id"] == s.guild.id
    global_cmd = emu.invoke_command(s.bot.id, s.alice.id, s.text.id, "roll")
    assert global_cmd["data"]["id"] == second[1]["id"] and "guild_id" not in global_cmd["data"]
    _, _, dm = await api("POST", "/users/@me/channels", {"recipient_id": s.alice.id})
    _, _, dm_again = await api("POST", "/users/@me/channels", {"recipient_id": s.alice.id})
    assert dm["type"] == 1 and dm["id"] == dm_again["id"]
    assert (await api("POST", f"/channels/{dm['id']}/messages", {"content": "hi in dm"}))[0] == 200
    assert len(emu.actions(bot_id=s.bot.id, kind="command_upsert")) == 3


async def test_only_registered_commands_are_delivered_and_listed(
    emu: DiscordEmulator, http: aiohttp.ClientSession, control: EmulatorControl
) -> None:
    s = scene(emu)
    gw = RawGateway(http, emu.gateway_url)
    await gw.connect()
    await gw.identify(s.bot.token)
    with pytest.raises(EmulatorError) as refused:
        await control.invoke_command(s.bot.id, s.alice.id, s.text.id, "play")
    assert refused.value.status == 404 and refused.value.body["code"] == 10063
    register(emu, s, "play")
    assert [c["name"] for c in await control.registered_commands(s.bot.id, s.guild.id)] == ["play"]
    assert await control.registered_commands(s.bot.id) == []
    await control.invoke_command(s.bot.id, s.alice.id, s.text.id, "play")
    # The refused command never reached the bot: the first interaction it sees is the registered one.
    assert (await gw.dispatch("INTERACTION_CREATE"))["d"]["data"]["name"] == "play"
    await gw.close()


async def test_rest_reads_hide_content_without_message_content(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu, privileged_intents=0)
    emu.post_user_message(s.alice.id, "private words", s.text.id)
    _, _, messages = await Api(http, emu, s.bot.token)("GET", f"/channels/{s.text.id}/messages?limit=10")
    assert [m["content"] for m in messages] == [""]
    assert emu.history(s.text.id)[0]["content"] == "private words"  # the control API sees everything


async def test_the_application_flags_say_which_privileged_intents_are_granted(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    granted, refused = scene(emu), scene(emu, privileged_intents=int(Intent.GUILD_MEMBERS))
    _, _, app = await Api(http, emu, granted.bot.token)("GET", "/applications/@me")
    # A bot in under 100 guilds holds the LIMITED flags: presence, members, message content.
    assert app["id"] == granted.bot.application_id and app["flags"] == (1 << 13) | (1 << 15) | (1 << 19)
    _, _, app = await Api(http, emu, refused.bot.token)("GET", "/applications/@me")
    assert app["flags"] == 1 << 15


async def test_many_invalid_requests_get_the_ip_banned(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    emu.limiter.clear()
    emu.configure(invalid_request_ban_threshold=5, invalid_request_ban_s=30.0)
    try:
        statuses = [(await Api(http, emu, "bad")("GET", "/users/@me"))[0] for _ in range(5)]
        async with http.get(emu.api_url + "/users/@me") as banned:
            assert banned.status == 429 and "Via" not in banned.headers
            assert banned.headers["Content-Type"].startswith("text/html")
        assert "127.0.0.1" in emu.invalid_requests()["banned"]
    finally:
        emu.limiter.clear()
        emu.configure(invalid_request_ban_threshold=10_000, invalid_request_ban_s=3600.0)
    assert statuses == [401] * 5


async def test_control_api_builds_a_world_and_reads_what_bots_did(
    emu: DiscordEmulator, http: aiohttp.ClientSession, control: EmulatorControl
) -> None:
    created = await control.load_world(
        {
            "users": [{"username": "carol"}],
            "guilds": [{"name": "ctl", "channels": [{"name": "chat"}, {"name": "Voice", "type": "voice"}]}],
        }
    )
    carol = created["users"][0]
    guild_id = created["guilds"][0]["id"]
    chat = created["guilds"][0]["channels"][0]
    await control.add_member(guild_id, carol)
    bot = await control.add_bot(username="ctlbot", guild_ids=[guild_id])
    posted = await control.post_user_message(carol, "hello from carol", chat)
    assert posted["author"]["id"] == carol
    waiter = asyncio.create_task(control.actions(bot_id=bot["id"], wait_s=5))
    # A head start so the long poll is already waiting when the action comes; the emulator shows no sign that
    # it is, and a poll that starts late finds the action at once, so the assertions hold either way.
    await asyncio.sleep(0.05)
    status, _, _ = await Api(http, emu, bot["token"])(
        "POST", f"/channels/{chat}/messages", {"content": "reply"}
    )
    assert status == 200
    actions = await waiter
    assert [(a["kind"], a["payload"]["content"]) for a in actions] == [("message", "reply")]
    assert [m["content"] for m in await control.history(chat)] == ["reply", "hello from carol"]
    assert (await control.stats(bot["id"]))["rest_requests"] == 1
    assert (await control.health())["status"] == "ok"
    with pytest.raises(EmulatorError) as error:
        await control.post_user_message(carol, "x", "12345")
    assert error.value.status == 404


async def test_traffic_posts_a_bounded_number_of_messages(
    emu: DiscordEmulator, control: EmulatorControl
) -> None:
    s: Scene = scene(emu)
    job = await control.start_traffic(
        channel_ids=[s.text.id], rate_per_s=500, count=40, content="msg {n} {bot_mention}"
    )

    async def finished() -> bool:
        return not (await control.traffic())[-1]["running"]

    await wait_until(finished, "the traffic job to finish")
    status = next(j for j in await control.traffic() if j["id"] == job["id"])
    assert status["sent"] == 40 and not status["running"]
    history = emu.history(s.text.id, limit=100)
    assert len(history) == 40 and history[-1]["content"] == f"msg 0 <@{s.bot.id}>"
    assert {m["author"]["id"] for m in history} == {s.alice.id, s.bob.id}
    with pytest.raises(EmulatorError):
        await control.start_traffic(channel_ids=[s.text.id], rate_per_s=10)  # unbounded: refused
    stopped = await control.start_traffic(guild_ids=[s.guild.id], rate_per_s=1, duration_s=60)
    assert [j["id"] for j in await control.stop_traffic(stopped["id"])] == [stopped["id"]]


async def test_control_api_user_actions_reach_the_gateway(
    emu: DiscordEmulator, http: aiohttp.ClientSession, control: EmulatorControl
) -> None:
    s = scene(emu)
    gw = RawGateway(http, emu.gateway_url)
    await gw.connect()
    await gw.identify(s.bot.token, intents=0xFFFF)  # bits 0-15: everything up to MESSAGE_CONTENT
    posted = await control.post_user_message(s.alice.id, "first", s.text.id)
    assert (await gw.dispatch("MESSAGE_CREATE"))["d"]["id"] == posted["id"]
    await control.edit_user_message(s.text.id, posted["id"], "edited")
    updated = (await gw.dispatch("MESSAGE_UPDATE"))["d"]
    assert updated["content"] == "edited" and updated["edited_timestamp"]
    await control.add_user_reaction(s.text.id, posted["id"], s.bob.id, "party:123")
    reaction = (await gw.dispatch("MESSAGE_REACTION_ADD"))["d"]
    assert reaction["emoji"] == {"id": "123", "name": "party", "animated": False}
    assert reaction["user_id"] == s.bob.id and reaction["message_author_id"] == s.alice.id
    await control.delete_user_message(s.text.id, posted["id"])
    assert (await gw.dispatch("MESSAGE_DELETE"))["d"] == {
        "id": posted["id"],
        "channel_id": s.text.id,
        "guild_id": s.guild.id,
    }
    await control.user_voice(s.guild.id, s.alice.id, s.voice.id)
    assert (await gw.dispatch("VOICE_STATE_UPDATE"))["d"]["channel_id"] == s.voice.id
    register(emu, s, "ping")
    interaction = await control.invoke_command(s.bot.id, s.bob.id, s.text.id, "ping")
    assert (await gw.dispatch("INTERACTION_CREATE"))["d"]["id"] == interaction["id"]
    assert await control.send_reconnect(s.bot.id) == 1
    assert (await gw.frame())["op"] == 7
    assert await control.drop_connections(s.bot.id) == 1
    assert await gw.close_code() is not None
    await control.configure(route_limit=7)
    assert emu.config.route_limit == 7
    await control.configure(route_limit=5)
    assert await control.revoke_token(s.bot.id) == 0  # no connection left to close
    assert (await control.stats(s.bot.id))["resumes"] == 0


def test_interactions_carry_the_invoking_members_permissions(emu: DiscordEmulator) -> None:
    s = scene(emu)
    owner = s.guild.owner_id
    emu.add_member(s.guild.id, owner)
    register(emu, s, "ban")
    by_member = emu.invoke_command(s.bot.id, s.alice.id, s.text.id, "ban")
    by_owner = emu.invoke_command(s.bot.id, owner, s.text.id, "ban")
    everyone = int(s.guild.roles[s.guild.id]["permissions"])
    assert int(by_member["member"]["permissions"]) == everyone
    assert not everyone & (1 << 2)  # a plain member cannot ban
    assert int(by_owner["member"]["permissions"]) == rules.ALL_PERMISSIONS


def test_user_options_come_resolved_with_their_members(emu: DiscordEmulator) -> None:
    s = scene(emu)
    stranger = emu.add_user("stranger")
    options = [
        {"name": "user", "type": 6, "value": s.bob.id},
        {"name": "other", "type": 6, "value": stranger.id},
        {"name": "reason", "type": 3, "value": s.bob.id},  # a string that looks like an id is not a user
    ]
    register(emu, s, "ban", "ping")
    interaction = emu.invoke_command(s.bot.id, s.alice.id, s.text.id, "ban", options)
    resolved = interaction["data"]["resolved"]
    assert set(resolved["users"]) == {s.bob.id, stranger.id}
    assert set(resolved["members"]) == {s.bob.id} and "user" not in resolved["members"][s.bob.id]
    assert "resolved" not in emu.invoke_command(s.bot.id, s.alice.id, s.text.id, "ping")["data"]


def upload(payload: dict[str, Any], files: list[tuple[str, bytes]]) -> aiohttp.FormData:
    """A message with files as discord.py sends it: payload_json, then files[n]."""
    form = aiohttp.FormData(quote_fields=False)
    form.add_field("payload_json", orjson.dumps(payload).decode())
    for index, (name, data) in enumerate(files):
        form.add_field(f"files[{index}]", data, filename=name, content_type="image/png")
    return form


async def test_uploaded_files_are_checked_as_discord_checks_them_and_served_back(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu)
    headers = {"Authorization": f"Bot {s.bot.token}"}
    url = f"{emu.api_url}/channels/{s.text.id}/messages"
    chart = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    described = {"content": "", "attachments": [{"id": 0, "filename": "stats.png", "description": "bars"}]}
    async with http.post(url, data=upload(described, [("stats.png", chart)]), headers=headers) as r:
        assert r.status == 200
        [attachment] = (await r.json())["attachments"]
    assert (attachment["filename"], attachment["size"], attachment["description"]) == (
        "stats.png",
        264,
        "bars",
    )
    async with http.get(attachment["url"]) as served:
        assert served.status == 200 and served.content_type == "image/png" and await served.read() == chart

    unknown = {"attachments": [{"id": 1, "filename": "other.png"}]}
    async with http.post(url, data=upload(unknown, [("stats.png", chart)]), headers=headers) as r:
        assert r.status == 400 and (await r.json())["code"] == 50035
    eleven = [(f"f{n}.png", chart) for n in range(11)]
    async with http.post(url, data=upload({"content": "x"}, eleven), headers=headers) as r:
        assert r.status == 400 and (await r.json())["code"] == 30015
    huge = [("huge.png", bytes(10 * 1024 * 1024 + 1))]
    async with http.post(url, data=upload({"content": "x"}, huge), headers=headers) as r:
        assert r.status == 413 and (await r.json())["code"] == 40005


async def test_an_interaction_answer_with_a_file_describes_it_in_its_data(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(emu)
    register(emu, s, "stats")
    interaction = emu.invoke_command(s.bot.id, s.alice.id, s.text.id, "stats")
    callback = f"{emu.api_url}/interactions/{interaction['id']}/{interaction['token']}/callback"
    data = {
        "embeds": [{"title": "Server activity", "image": {"url": "attachment://stats.png"}}],
        "attachments": [{"id": 0, "filename": "stats.png"}],
    }
    async with http.post(
        callback,
        data=upload({"type": 4, "data": data}, [("stats.png", b"\x89PNG")]),
        params={"with_response": "1"},
    ) as r:
        assert r.status == 200
        message = (await r.json())["resource"]["message"]
    assert [a["filename"] for a in message["attachments"]] == ["stats.png"]
    assert message["embeds"][0]["image"]["url"] == "attachment://stats.png"
    assert emu.history(s.text.id)[0]["attachments"][0]["size"] == 4
