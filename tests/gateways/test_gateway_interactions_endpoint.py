"""The Interactions Endpoint URL without the stack: request signatures, the event an HTTP interaction
becomes, and the emulated Discord's side (verifying PING, signed POSTs, the HTTP answer as the callback)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import orjson
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from emulator.discord import DiscordEmulator
from emulator.discord.endpoint import signed_headers, verify_key
from emulator.discord.errors import ApiError
from emulator.discord.world import Bot
from gateways import actions, dispatch
from gateways.interactions_http import MAX_SIGNATURE_AGE_S, PONG, signature_valid

BODY = b'{"type":1}'


def signed(key: Ed25519PrivateKey, body: bytes, at: float) -> tuple[str, str]:
    headers = signed_headers(key, body, str(int(at)))
    return headers["X-Signature-Ed25519"], headers["X-Signature-Timestamp"]


def test_a_request_signed_with_the_applications_key_verifies() -> None:
    key = Ed25519PrivateKey.generate()
    now = time.time()
    signature, timestamp = signed(key, BODY, now)
    assert signature_valid(verify_key(key), signature, timestamp, BODY, now)


def test_another_key_an_altered_body_or_garbage_is_refused() -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    now = time.time()
    signature, timestamp = signed(other, BODY, now)
    assert not signature_valid(verify_key(key), signature, timestamp, BODY, now)
    signature, timestamp = signed(key, BODY, now)
    assert not signature_valid(verify_key(key), signature, timestamp, b'{"type":2}', now)
    # The timestamp is signed too: the same signature under another timestamp fails.
    assert not signature_valid(verify_key(key), signature, str(int(now) + 1), BODY, now)
    assert not signature_valid(verify_key(key), "zz", timestamp, BODY, now)
    assert not signature_valid(verify_key(key), signature, "yesterday", BODY, now)
    assert not signature_valid("", signature, timestamp, BODY, now)


def test_a_replayed_request_with_an_old_timestamp_is_refused() -> None:
    key = Ed25519PrivateKey.generate()
    sent = time.time()
    signature, timestamp = signed(key, BODY, sent)
    later = sent + MAX_SIGNATURE_AGE_S + 1
    assert signature_valid(verify_key(key), signature, timestamp, BODY, sent + 1)
    assert not signature_valid(verify_key(key), signature, timestamp, BODY, later)


def test_an_http_interaction_is_named_by_its_id_and_keyed_like_the_gateways() -> None:
    interaction = {"id": "900", "type": 2, "guild_id": "10", "channel_id": "20", "token": "t"}
    first = dispatch.interaction_envelope("7", interaction, datetime.now(UTC))
    again = dispatch.interaction_envelope("7", interaction, datetime.now(UTC))
    assert first.event_id == again.event_id == "7:interaction:900"
    assert (first.type, first.guild_id, first.channel_id) == ("INTERACTION_CREATE", "10", "20")
    on_gateway = dispatch.envelope("7:g:3", "7", 0, 3, "INTERACTION_CREATE", interaction, first.received_at)
    assert first.key == on_gateway.key


Handler = Callable[[web.Request], Awaitable[web.Response]]


@pytest.fixture
async def local_discord() -> AsyncIterator[DiscordEmulator]:
    async with DiscordEmulator() as emu:
        yield emu


@pytest.fixture
async def endpoint() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """Serve a handler as an interactions endpoint; returns its URL."""
    runners: list[web.AppRunner] = []

    async def serve(handler: Handler) -> str:
        app = web.Application()
        app.router.add_post("/", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}/"

    yield serve
    for runner in runners:
        await runner.cleanup()


def verifying(bot: Bot, answer: Callable[[dict], dict | None]) -> Handler:
    """An endpoint done right: 401 on a bad signature, PONG to a PING, `answer` to the rest (None: 500)."""

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        ok = signature_valid(
            verify_key(bot.signing_key),
            request.headers.get("X-Signature-Ed25519", ""),
            request.headers.get("X-Signature-Timestamp", ""),
            body,
            time.time(),
        )
        if not ok:
            return web.json_response({}, status=401)
        interaction = orjson.loads(body)
        if interaction["type"] == 1:
            return web.json_response(PONG)
        answered = answer(interaction)
        return web.json_response(answered) if answered is not None else web.Response(status=500)

    return handle


def command_world(emulator: DiscordEmulator) -> tuple[Bot, str, str]:
    guild = emulator.add_guild("g")
    channel = emulator.add_channel(guild.id, "general")
    user = emulator.add_user("alice")
    emulator.add_member(guild.id, user.id)
    bot = emulator.add_bot("b", guild_ids=[guild.id])
    emulator.put_commands(bot, bot.application_id, guild.id, [{"name": "ask", "description": "Ask."}])
    return bot, user.id, channel.id


async def test_an_endpoint_that_does_not_check_signatures_is_refused(
    local_discord: DiscordEmulator, endpoint: Callable[[Handler], Awaitable[str]]
) -> None:
    bot, _, _ = command_world(local_discord)

    async def always_pong(request: web.Request) -> web.Response:
        return web.json_response(PONG)

    for url in (await endpoint(always_pong), "http://127.0.0.1:9/"):
        with pytest.raises(ApiError) as refused:
            await local_discord.set_interactions_endpoint(bot, url)
        assert refused.value.code == 50035 and "interactions_endpoint_url" in (refused.value.errors or {})
    assert bot.interactions_endpoint_url is None


async def test_interactions_go_to_the_endpoint_signed_and_its_answer_is_the_callback(
    local_discord: DiscordEmulator, endpoint: Callable[[Handler], Awaitable[str]]
) -> None:
    bot, user_id, channel_id = command_world(local_discord)
    received: list[dict] = []

    def defer(interaction: dict) -> dict:
        received.append(interaction)
        return actions.DEFERRAL

    url = await endpoint(verifying(bot, defer))
    await local_discord.set_interactions_endpoint(bot, url)
    assert bot.interactions_endpoint_url == url
    since = local_discord.world.actions.last_seq
    interaction = local_discord.invoke_command(bot.id, user_id, channel_id, "ask")
    deferred = await local_discord.wait_actions(since, bot.id, "interaction_response")
    assert deferred and deferred[0].payload["type"] == 5
    assert [r["id"] for r in received] == [interaction["id"]]
    assert local_discord.world.interactions[interaction["id"]].acknowledged


async def test_an_endpoint_that_fails_is_the_users_did_not_respond(
    local_discord: DiscordEmulator, endpoint: Callable[[Handler], Awaitable[str]]
) -> None:
    bot, user_id, channel_id = command_world(local_discord)
    await local_discord.set_interactions_endpoint(bot, await endpoint(verifying(bot, lambda _: None)))
    since = local_discord.world.actions.last_seq
    interaction = local_discord.invoke_command(bot.id, user_id, channel_id, "ask")
    failed = await local_discord.wait_actions(since, bot.id, "interaction_failed")
    assert failed and failed[0].payload["interaction_id"] == interaction["id"]
    assert not local_discord.world.interactions[interaction["id"]].acknowledged
