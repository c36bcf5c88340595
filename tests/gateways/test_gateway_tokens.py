"""A dead token is marked, announced on tokens.health and never used again; no plaintext token leaks into a
topic, a log line, a table row or Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from emulator.discord import DiscordEmulator
from models.actions import SendMessage
from models.tokens import TokenStatus
from settings import Settings
from streams.catalog import DEAD_LETTERS, DISCORD_ACTIONS, TOKENS_HEALTH
from streams.outbox import run_relay
from tests.gateways.conftest import (
    GATEWAY_TOPICS,
    RunnerProcess,
    World,
    eventually,
    produce_action,
    read_all,
    read_topic,
    seal_bot,
)

pytestmark = [pytest.mark.stack, pytest.mark.timeout(120)]


@dataclass
class SealedBot:
    bot_id: str
    token: str
    token_id: uuid.UUID


@pytest.fixture(scope="module")
async def relay(stack_up: Settings, schema_dsn: str) -> AsyncIterator[None]:
    """The outbox relay of this module's schema: the vault announces token health through the outbox."""
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_relay(schema_dsn, stack_up.kafka_bootstrap, stop=stop, poll_interval_s=0.2)
    )
    yield
    stop.set()
    await task


@pytest.fixture(scope="module")
async def bots(
    emulator: DiscordEmulator, world: World, schema_dsn: str, key_spec: str
) -> dict[str, SealedBot]:
    sealed = {}
    for name in ("victim", "bystander"):
        bot = emulator.add_bot(name, guild_ids=[world.guild_id])
        sealed[name] = SealedBot(bot.id, bot.token, await seal_bot(schema_dsn, key_spec, bot))
    return sealed


@pytest.fixture(scope="module")
async def runner(
    runners: Callable[..., RunnerProcess], emulator: DiscordEmulator, bots: dict[str, SealedBot], relay: None
) -> RunnerProcess:
    # DEBUG: the leak scan below reads every line the runner and discord.py would ever log.
    runner = runners("guard", log_level="DEBUG")
    connected = await eventually(
        lambda: (
            all(emulator.stats(b.bot_id)["connected_sessions"] for b in bots.values()) or not runner.alive
        ),
        within_s=60,
    )
    assert connected and runner.alive, runner.log()
    return runner


async def token_status(dsn: str, token_id: uuid.UUID) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval("SELECT status FROM bot_tokens WHERE token_id = $1", token_id))
    finally:
        await conn.close()


async def test_a_revoked_token_is_marked_announced_and_never_used_again(
    stack_up: Settings,
    namespace: str,
    schema_dsn: str,
    emulator: DiscordEmulator,
    world: World,
    producer: AIOKafkaProducer,
    bots: dict[str, SealedBot],
    runner: RunnerProcess,
) -> None:
    victim, bystander = bots["victim"], bots["bystander"]
    await emulator.revoke_token(victim.bot_id)  # REST answers 401 from now on; the gateway closed with 4004

    async def marked() -> bool:
        return await token_status(schema_dsn, victim.token_id) == TokenStatus.revoked

    assert await eventually(marked, within_s=20), runner.log()

    health = await read_topic(
        stack_up.kafka_bootstrap,
        TOKENS_HEALTH.name_in(namespace),
        until=lambda records: bool(records),
        within_s=20,
    )
    events = [TOKENS_HEALTH.codec.decode(record.value) for record in health]
    assert [(e.token_id, e.bot_user_id, e.status, e.reason) for e in events] == [
        (victim.token_id, victim.bot_id, TokenStatus.revoked, "close_4004")
    ]
    assert health[0].key == str(victim.token_id).encode()

    used = emulator.stats(victim.bot_id)
    run = uuid.uuid4().hex[:8]
    for bot in (victim, bystander):
        await produce_action(
            producer,
            namespace,
            SendMessage(
                action_id=f"after-revoke-{run}-{bot.bot_id}",
                bot_id=bot.bot_id,
                guild_id=world.guild_id,
                channel_id=world.channel_id,
                content=f"after revoke {run} from {bot.bot_id}",
            ),
        )
    dead_topic = DEAD_LETTERS[DISCORD_ACTIONS.name].name_in(namespace)
    letters = await read_topic(
        stack_up.kafka_bootstrap, dead_topic, until=lambda records: bool(records), within_s=30
    )
    letter = DEAD_LETTERS[DISCORD_ACTIONS.name].codec.decode(letters[0].value)
    assert letter.key == victim.bot_id
    assert "revoked" in letter.error
    # The bystander's action went through; the victim's token was not tried again, on REST or the gateway.
    assert await eventually(lambda: emulator.actions(bot_id=bystander.bot_id, kind="message"), within_s=20)
    # No retry is the behaviour under test: only waiting (the runner is a process, no clock to drive) gives a
    # wrong retry the room to show.
    await asyncio.sleep(2.0)
    after = emulator.stats(victim.bot_id)
    assert emulator.actions(bot_id=victim.bot_id, kind="message") == []
    for counter in ("rest_requests", "rest_401", "identifies", "resumes", "gateway_connections"):
        assert after[counter] == used[counter], counter


async def test_no_plaintext_token_in_topics_logs_tables_or_redis(
    stack_up: Settings,
    namespace: str,
    schema_dsn: str,
    bots: dict[str, SealedBot],
    runner: RunnerProcess,
    redis_client: aioredis.Redis,
) -> None:
    tokens = [bot.token for bot in bots.values()]
    assert await runner.terminate() == 0
    places: dict[str, str] = {"runner log": runner.log()}
    assert "DEBUG" in places["runner log"]  # the scan reads debug output too
    for spec in GATEWAY_TOPICS:
        records = await read_all(stack_up.kafka_bootstrap, spec, namespace)
        places[spec.name_in(namespace)] = "\n".join(
            (record.value or b"").decode(errors="replace") for record in records
        )
    assert places[f"{namespace}discord.events"], "the scan needs events to scan"
    conn = await asyncpg.connect(schema_dsn)
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        for table in tables:
            rows = await conn.fetch(f'SELECT row_to_json(t)::text AS row FROM "{table["table_name"]}" t')
            places[f"table {table['table_name']}"] = "\n".join(row["row"] for row in rows)
    finally:
        await conn.close()
    keys = [key async for key in redis_client.scan_iter(match=f"{namespace}*")]
    assert keys, "the scan needs the runner's Redis keys"
    values = [await redis_client.get(key) for key in keys]
    places["redis"] = "\n".join(f"{k!r} {v!r}" for k, v in zip(keys, values, strict=True))
    # The scan sees what it should: every bot is named in the log, the tables and Redis.
    for place in ("runner log", "table bot_tokens", "table token_access_audit", "redis"):
        assert all(
            bot.bot_id in places[place] or str(bot.token_id) in places[place] for bot in bots.values()
        ), place
    leaks = [(place, n) for place, text in places.items() for n, token in enumerate(tokens) if token in text]
    assert leaks == []
