"""REST as Discord documents it: every action kind the platform performs, rate limits (per-route buckets
keyed by their major parameter, the global limit, 429 with retry_after), bodies refused field by field."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tests.conformance.conftest import Api, Connect, Reply, ready_session
from tests.conformance.driver import Driver, Scene
from tests.waiting import wait_until

pytestmark = pytest.mark.stack

THUMBS_UP = "%F0%9F%91%8D"
# Enough requests in parallel, spread over channels so that no route bucket fills first, to pass the
# global limit of 50 requests per second.
GLOBAL_BURST_CHANNELS = 24
REQUESTS_PER_CHANNEL = 5


def ok(reply: Reply, status: int = 200) -> Reply:
    assert reply.status == status, (reply.status, reply.body)
    return reply


async def test_messages_replies_edits_reactions_typing_and_deletes(api: Api, scene: Scene) -> None:
    channel = f"/channels/{scene.channel_id}"
    sent = ok(await api("POST", f"{channel}/messages", {"content": "hello"})).body
    assert sent["content"] == "hello" and sent["author"]["id"] == scene.bot_id and sent["type"] == 0
    reference = {"message_id": sent["id"], "fail_if_not_exists": False}
    reply = ok(await api("POST", f"{channel}/messages", {"content": "again", "message_reference": reference}))
    assert reply.body["type"] == 19 and reply.body["message_reference"]["message_id"] == sent["id"]
    edited = ok(await api("PATCH", f"{channel}/messages/{sent['id']}", {"content": "hello, edited"})).body
    assert edited["content"] == "hello, edited" and edited["edited_timestamp"]
    ok(await api("PUT", f"{channel}/messages/{sent['id']}/reactions/{THUMBS_UP}/@me"), 204)
    ok(await api("DELETE", f"{channel}/messages/{sent['id']}/reactions/{THUMBS_UP}/@me"), 204)
    ok(await api("POST", f"{channel}/typing"), 204)
    ok(await api("DELETE", f"{channel}/messages/{sent['id']}"), 204)
    assert (await api("GET", f"{channel}/messages/{sent['id']}")).status == 404


async def test_a_direct_message_and_a_native_poll(api: Api, scene: Scene) -> None:
    dm = ok(await api("POST", "/users/@me/channels", {"recipient_id": scene.member_ids[0]})).body
    assert dm["type"] == 1
    ok(await api("POST", f"/channels/{dm['id']}/messages", {"content": "psst"}))
    poll = {
        "question": {"text": "Tea or coffee?"},
        "answers": [{"poll_media": {"text": "tea"}}, {"poll_media": {"text": "coffee"}}],
        "duration": 1,
    }
    created = ok(await api("POST", f"/channels/{scene.channel_id}/messages", {"poll": poll})).body
    assert created["poll"]["question"]["text"] == "Tea or coffee?"


async def test_moderation_timeout_nick_roles_kick_ban_unban(api: Api, scene: Scene) -> None:
    guild = f"/guilds/{scene.guild_id}"
    alice, bob = scene.member_ids
    until = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    timed_out = ok(await api("PATCH", f"{guild}/members/{alice}", {"communication_disabled_until": until}))
    assert timed_out.body["communication_disabled_until"]
    renamed = ok(await api("PATCH", f"{guild}/members/{alice}", {"nick": "Al", "roles": []}))
    assert renamed.body["nick"] == "Al"
    ok(await api("PATCH", f"{guild}/members/@me", {"nick": "Conformance"}))
    ok(await api("DELETE", f"{guild}/members/{bob}"), 204)
    ok(await api("PUT", f"{guild}/bans/{alice}", {"delete_message_seconds": 0}), 204)
    ok(await api("DELETE", f"{guild}/bans/{alice}"), 204)
    unknown = await api("DELETE", f"{guild}/bans/{alice}")
    assert unknown.status == 404 and unknown.body["code"] == 10026  # Unknown Ban


async def test_guild_commands_are_overwritten_in_bulk(api: Api, scene: Scene) -> None:
    path = f"/applications/{scene.application_id}/guilds/{scene.guild_id}/commands"
    first = ok(await api("PUT", path, [{"name": "ping", "description": "Ping"}])).body
    second = ok(
        await api(
            "PUT", path, [{"name": "ping", "description": "Ping!"}, {"name": "pong", "description": "P"}]
        )
    )
    by_name = {command["name"]: command for command in second.body}
    assert by_name["ping"]["id"] == first[0]["id"]  # a same-named command keeps its id
    ok(await api("PUT", path, []))
    assert ok(await api("GET", path)).body == []


async def test_a_route_bucket_fills_per_channel_and_answers_429_with_retry_after(
    api: Api, driver: Driver
) -> None:
    scene = await driver.scene(text_channels=2)
    busy, other = (f"/channels/{c}/messages" for c in scene.text_channel_ids)
    bot_api = Api(api.session, api.base, scene.bot_token)
    first = ok(await bot_api("POST", busy, {"content": "0"}))
    assert first.headers.get("X-RateLimit-Bucket") and first.headers.get("X-RateLimit-Limit")
    limited: Reply | None = None
    for n in range(1, 50):
        reply = await bot_api("POST", busy, {"content": str(n)})
        if reply.status == 429:
            limited = reply
            break
        ok(reply)
    assert limited is not None, "no 429 in 50 messages to one channel"
    assert limited.body["retry_after"] > 0 and limited.body["global"] is False
    assert limited.headers.get("Retry-After") and limited.headers.get("X-RateLimit-Scope") in (
        "user",
        "shared",
    )
    # Another channel is another bucket (the channel is the route's major parameter).
    ok(await bot_api("POST", other, {"content": "elsewhere"}))

    async def accepted_again() -> bool:
        return (await bot_api("POST", busy, {"content": "after the wait"})).status == 200

    await wait_until(
        accepted_again, "the bucket to reset", timeout_s=30, every_s=float(limited.body["retry_after"])
    )


async def test_the_global_limit_answers_429_global(api: Api, driver: Driver) -> None:
    scene = await driver.scene(text_channels=GLOBAL_BURST_CHANNELS)
    bot_api = Api(api.session, api.base, scene.bot_token)
    replies = await asyncio.gather(
        *(
            bot_api("GET", f"/channels/{channel}/messages?limit=1")
            for channel in scene.text_channel_ids
            for _ in range(REQUESTS_PER_CHANNEL)
        )
    )
    limited = [r for r in replies if r.status == 429]
    assert limited, "the burst stayed under the global limit"
    assert all(r.status in (200, 429) for r in replies)
    assert any(r.body["global"] is True and r.headers.get("X-RateLimit-Global") == "true" for r in limited)


async def test_an_unauthenticated_request_is_401(api: Api, scene: Scene) -> None:
    reply = await api("GET", f"/channels/{scene.channel_id}", auth=False)
    assert reply.status == 401 and reply.body["code"] == 0


async def test_invalid_bodies_are_refused_naming_the_field(api: Api, scene: Scene) -> None:
    too_long = await api("POST", f"/channels/{scene.channel_id}/messages", {"content": "x" * 2001})
    assert too_long.status == 400 and too_long.body["code"] == 50035
    assert too_long.body["message"] == "Invalid Form Body"
    assert too_long.body["errors"]["content"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"
    embeds = await api("POST", f"/channels/{scene.channel_id}/messages", {"embeds": [{"title": "t" * 257}]})
    assert embeds.body["errors"]["embeds"]["0"]["title"]["_errors"]
    path = f"/applications/{scene.application_id}/guilds/{scene.guild_id}/commands"
    options = [
        {"type": 3, "name": "maybe", "description": "optional"},
        {"type": 3, "name": "must", "description": "required", "required": True},
    ]
    command = await api("PUT", path, [{"name": "order", "description": "d", "options": options}])
    assert command.status == 400 and command.body["code"] == 50035
    assert command.body["errors"]["0"]["options"]["1"]["required"]["_errors"]
    ban = await api(
        "PUT", f"/guilds/{scene.guild_id}/bans/{scene.member_ids[0]}", {"delete_message_seconds": 604_801}
    )
    assert ban.status == 400 and ban.body["errors"]["delete_message_seconds"]["_errors"]
    nick = await api("PATCH", f"/guilds/{scene.guild_id}/members/{scene.member_ids[0]}", {"nick": "n" * 33})
    assert nick.status == 400 and nick.body["errors"]["nick"]["_errors"]


async def test_a_bots_own_message_reaches_its_gateway(api: Api, scene: Scene, connect: Connect) -> None:
    gateway, _, seq = await ready_session(connect, scene)
    sent = ok(await api("POST", f"/channels/{scene.channel_id}/messages", {"content": "echo"})).body
    created = await gateway.dispatch("MESSAGE_CREATE")
    assert created["d"]["id"] == sent["id"] and created["s"] == seq + 1
