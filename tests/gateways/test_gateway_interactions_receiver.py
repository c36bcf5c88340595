"""Interactions over HTTP through the stack: a runner points its bot's application at the receiver, the
emulated Discord POSTs a slash command there instead of the gateway, the receiver defers it in its answer
and writes it to discord.events, and the processors' answer (an action) edits the deferred original."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiokafka import AIOKafkaProducer

from emulator.discord import DiscordEmulator
from gateways.autocomplete import MusicLibrary
from gateways.interactions_http import InteractionsReceiver, VerifyKeys
from models.actions import InteractionResponse
from models.events import EventEnvelope
from models.tools import Tool
from settings import Settings
from streams.catalog import DISCORD_EVENTS
from tests.gateways.conftest import RunnerProcess, World, eventually, produce_action, read_events, seal_bot
from tests.gateways.test_gateway_runner import configure_agent
from vault.user_keys import UserKeyStore

pytestmark = [pytest.mark.stack, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
async def receiver_url(
    namespace: str,
    producer: AIOKafkaProducer,
    redis_client: aioredis.Redis,
    tmp_path_factory: pytest.TempPathFactory,
    data_keys: UserKeyStore,
) -> AsyncIterator[str]:
    library = MusicLibrary(tmp_path_factory.mktemp("music"))
    receiver = InteractionsReceiver(
        VerifyKeys(redis_client, namespace), producer, DISCORD_EVENTS.name_in(namespace), library, data_keys
    )
    runner = web.AppRunner(receiver.app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.fixture(scope="module")
def runner(receiver_url: str, runners: Callable[..., RunnerProcess]) -> RunnerProcess:
    return runners("http", instance_id="http", extra_env={"DEEP_INTERACTIONS_URL": receiver_url})


@pytest.fixture(scope="module")
async def bot_id(
    emulator: DiscordEmulator,
    world: World,
    schema_dsn: str,
    key_spec: str,
    receiver_url: str,
    runner: RunnerProcess,
) -> str:
    bot = emulator.add_bot("http-bot", guild_ids=[world.guild_id])
    await seal_bot(schema_dsn, key_spec, bot)
    await configure_agent(schema_dsn, bot.id, Tool.music)
    endpoint = f"{receiver_url}/{bot.id}"
    set_up = await eventually(
        lambda: (
            (
                bot.interactions_endpoint_url == endpoint
                and "play" in {c["name"] for c in emulator.registered_commands(bot.id, world.guild_id)}
            )
            or not runner.alive
        ),
        within_s=60,
    )
    assert set_up and runner.alive, runner.log()
    return bot.id


async def test_a_command_posted_to_the_receiver_is_deferred_then_answered_by_editing_it(
    stack_up: Settings,
    namespace: str,
    emulator: DiscordEmulator,
    world: World,
    producer: AIOKafkaProducer,
    bot_id: str,
    data_keys: UserKeyStore,
) -> None:
    since = emulator.world.actions.last_seq
    query = f"track {uuid.uuid4().hex}"
    options = [{"name": "query", "type": 3, "value": query}]
    interaction = emulator.invoke_command(bot_id, world.user_id, world.channel_id, "play", options)
    deferred = await emulator.wait_actions(since, bot_id, "interaction_response")
    assert [a.payload["type"] for a in deferred] == [5]

    event_id = f"{bot_id}:interaction:{interaction['id']}"

    def carries(events: list[EventEnvelope]) -> bool:
        return any(e.event_id == event_id for e in events)

    events = await read_events(stack_up.kafka_bootstrap, namespace, data_keys, until=carries, within_s=20)
    mine = [e for e in events if e.type == "INTERACTION_CREATE" and e.data["id"] == interaction["id"]]
    # Delivered once, over HTTP only: the gateway session carried no copy with an id of its own.
    assert [e.event_id for e in mine] == [event_id]
    assert mine[0].data["data"]["options"][0]["value"] == query

    answer = InteractionResponse(
        action_id=f"answer-{interaction['id']}",
        bot_id=bot_id,
        guild_id=world.guild_id,
        interaction_id=interaction["id"],
        interaction_token=interaction["token"],
        content=f"Playing {query}",
    )
    await produce_action(producer, namespace, answer)
    await produce_action(producer, namespace, answer)  # redelivered: still answered once

    def edits() -> list:
        return [
            a
            for a in emulator.actions(since, bot_id, "interaction_response")
            if a.payload.get("stage") != "callback"
        ]

    assert await eventually(edits, within_s=30)
    original = emulator.world.interactions[interaction["id"]].original
    assert original is not None and original.payload["content"] == f"Playing {query}"
    assert len(edits()) == 1


async def test_a_request_not_signed_by_discord_is_refused_with_401(receiver_url: str, bot_id: str) -> None:
    async with aiohttp.ClientSession() as http:
        body = orjson.dumps({"type": 1})
        headers = {"X-Signature-Ed25519": "00" * 64, "X-Signature-Timestamp": "1"}
        async with http.post(f"{receiver_url}/{bot_id}", data=body, headers=headers) as response:
            assert response.status == 401


async def test_a_runner_without_a_receiver_takes_the_bot_back_to_gateway_delivery(
    emulator: DiscordEmulator,
    world: World,
    runner: RunnerProcess,
    runners: Callable[..., RunnerProcess],
    bot_id: str,
) -> None:
    await runner.terminate()
    gateway_runner = runners("gateway-only", instance_id="http")
    bot = emulator.world.bot(bot_id)
    cleared = await eventually(
        lambda: (
            (bot.interactions_endpoint_url is None and emulator.stats(bot_id)["connected_sessions"])
            or not gateway_runner.alive
        ),
        within_s=60,
    )
    assert cleared and gateway_runner.alive, gateway_runner.log()
    since = emulator.world.actions.last_seq
    emulator.invoke_command(bot_id, world.user_id, world.channel_id, "play")
    # Received over the gateway session: the runner defers it at its deadline.
    deferred = await emulator.wait_actions(since, bot_id, "interaction_response", wait_s=10)
    assert [a.payload["type"] for a in deferred] == [5]
    assert emulator.actions(since, bot_id, "interaction_failed") == []
