"""Gateway test fixtures: an emulated Discord, a private topic namespace, a private PostgreSQL schema, bots
sealed in the vault, and runners as subprocesses (killing one must be a real SIGKILL)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import discord
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr

from emulator.discord import DiscordEmulator, EmulatorConfig
from emulator.discord.world import Bot
from gateways.fleet import Fleet
from gateways.rest import RestClients, use_api_base
from gateways.voice.manager import VoiceManager
from gateways.voice.speech import Speech
from gateways.voice.store import VoiceStore
from infra.migrate import migrate
from models.actions import Action
from models.events import EventEnvelope
from settings import REPO_ROOT, Settings
from streams.catalog import DEAD_LETTERS, DISCORD_ACTIONS, DISCORD_EVENTS, TOKENS_HEALTH, TopicSpec
from streams.codec import encode_key
from streams.sealing import DataKeys, open_envelope
from tests.kafka_namespace import temporary_namespace
from vault.keyring import KeyRing, generate_key_spec
from vault.user_keys import UserKeyStore

GATEWAY_TOPICS: tuple[TopicSpec, ...] = (
    DISCORD_EVENTS,
    DISCORD_ACTIONS,
    TOKENS_HEALTH,
    DEAD_LETTERS[DISCORD_ACTIONS.name],
)


def emulator_config(**changes: Any) -> EmulatorConfig:
    # Quick heartbeats so a dead connection is noticed fast; Discord's identify pacing (5 s) stays on.
    return EmulatorConfig.model_validate({"heartbeat_interval_ms": 1000, **changes})


@pytest.fixture(scope="module")
async def namespace(stack_up: Settings) -> AsyncIterator[str]:
    """A private namespace for topics and Redis keys, deleted afterwards (every partition costs the broker a
    file descriptor)."""
    async with temporary_namespace(stack_up.kafka_bootstrap, GATEWAY_TOPICS) as name:
        yield name
    redis = aioredis.Redis.from_url(stack_up.redis_url)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{name}*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


async def delete_topics(bootstrap: str, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(topics)
    finally:
        await admin.close()


@pytest.fixture(scope="module")
async def schema_dsn(stack_up: Settings) -> AsyncIterator[str]:
    """The stack's database through a private, migrated schema: the roster sees only this module's bots."""
    schema = f"test_gw_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(stack_up.postgres_dsn)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        dsn = f"{stack_up.postgres_dsn}?search_path={schema}"
        await migrate(dsn)
        yield dsn
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def key_spec() -> str:
    return generate_key_spec("gwtest")


@pytest.fixture(scope="module")
async def data_keys(schema_dsn: str, key_spec: str) -> AsyncIterator[UserKeyStore]:
    """The users' data keys the runners of this module seal events with."""
    pool = await asyncpg.create_pool(schema_dsn, min_size=1, max_size=2)
    keys = UserKeyStore(pool, KeyRing.parse(key_spec))
    await keys.listen(schema_dsn)
    yield keys
    await keys.close()
    await pool.close()


async def read_events(
    bootstrap: str,
    namespace: str,
    keys: DataKeys,
    *,
    until: Callable[[list[EventEnvelope]], bool],
    within_s: float,
) -> list[EventEnvelope]:
    """Every event of the namespace's `discord.events` from the start, opened, read until `until(events)`
    holds or `within_s` passes."""
    consumer = AIOKafkaConsumer(
        DISCORD_EVENTS.name_in(namespace),
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    events: list[EventEnvelope] = []
    try:
        deadline = asyncio.get_running_loop().time() + within_s
        while not until(events) and asyncio.get_running_loop().time() < deadline:
            for batch in (await consumer.getmany(timeout_ms=300)).values():
                events.extend(await opened_events(batch, keys))
    finally:
        await consumer.stop()
    return events


async def opened_events(records: Iterable[Any], keys: DataKeys) -> list[EventEnvelope]:
    """The records' events with their personal fields opened (none of these tests erases anyone)."""
    events = []
    for record in records:
        envelope = await open_envelope(DISCORD_EVENTS.codec.decode(record.value), keys)
        assert envelope is not None, "an event sealed under a destroyed key"
        events.append(envelope)
    return events


@pytest.fixture(scope="module")
async def emulator() -> AsyncIterator[DiscordEmulator]:
    emu = DiscordEmulator(emulator_config())
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
async def rest(emulator: DiscordEmulator) -> AsyncIterator[RestClients]:
    """REST clients (discord.py's) talking to the emulator."""
    previous = discord.http.Route.BASE
    use_api_base(emulator.api_url)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield RestClients(session)
    discord.http.Route.BASE = previous


@dataclass
class World:
    guild_id: str
    channel_id: str
    user_id: str


@pytest.fixture(scope="module")
def world(emulator: DiscordEmulator) -> World:
    guild = emulator.add_guild("gw-guild")
    channel = emulator.add_channel(guild.id, "general")
    user = emulator.add_user("alice")
    emulator.add_member(guild.id, user.id)
    return World(guild.id, channel.id, user.id)


async def seal_bot(dsn: str, key_spec: str, bot: Bot) -> uuid.UUID:
    """An owner, an agent, the bot's token sealed as the vault seals it, and one active deployment."""
    token_id = uuid.uuid4()
    sealed = KeyRing.parse(key_spec).encrypt(token_id, SecretStr(bot.token))
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            owner_id = await conn.fetchval("INSERT INTO owners (name) VALUES ('gw-owner') RETURNING owner_id")
            config_id = await conn.fetchval(
                "INSERT INTO agent_configurations (owner_id, agent_name, config) VALUES ($1, 'agent', '{}')"
                " RETURNING config_id",
                owner_id,
            )
            await conn.execute(
                "INSERT INTO bot_tokens (token_id, owner_id, bot_user_id, bot_username, key_id, ciphertext,"
                " nonce) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                token_id,
                owner_id,
                bot.id,
                bot.user.username,
                sealed.key_id,
                sealed.ciphertext,
                sealed.nonce,
            )
            guild_id = next(iter(bot.guild_ids), "1")
            await conn.execute(
                "INSERT INTO agent_deployments (config_id, guild_id, token_id) VALUES ($1, $2, $3)",
                config_id,
                guild_id,
                token_id,
            )
    finally:
        await conn.close()
    return token_id


class RunnerProcess:
    """`python -m gateways` with the test's stack, emulator and namespace; output goes to a log file."""

    def __init__(
        self, env: dict[str, str], runner_id: str, log_path: Path, instance_id: str | None = None
    ) -> None:
        self.env = env
        self.runner_id = runner_id
        self.log_path = log_path
        # A static group member: restarted under the same id, it gets its partitions back at once.
        self.instance_id = instance_id
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RunnerProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateways",
                "--runner-id",
                self.runner_id,
                "--session-timeout-ms",
                "6000",
                "--heartbeat-interval-ms",
                "1000",
                "--roster-interval-s",
                "1",
                *(["--instance-id", self.instance_id] if self.instance_id else []),
            ],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    async def terminate(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.process.wait, 15)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Runners:
    """Starts runners as subprocesses, `runners("r1")`; every one still alive is stopped by `stop_all`."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self._env = env
        self._logs = logs
        self._started: list[RunnerProcess] = []

    def __call__(
        self,
        runner_id: str,
        log_level: str = "INFO",
        instance_id: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> RunnerProcess:
        env = {**self._env, "DEEP_LOG_LEVEL": log_level, **(extra_env or {})}
        runner = RunnerProcess(env, runner_id, self._logs / f"{runner_id}.log", instance_id).start()
        self._started.append(runner)
        return runner

    async def stop_all(self) -> None:
        for runner in self._started:
            await runner.terminate()


@pytest.fixture(scope="module")
async def runners(
    stack_up: Settings,
    namespace: str,
    schema_dsn: str,
    key_spec: str,
    emulator: DiscordEmulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Runners]:
    """The module's runners, all stopped when the module ends."""
    env = {
        **os.environ,
        "DEEP_TOPIC_NAMESPACE": namespace,
        "DISCORD_API_BASE": emulator.api_url,
        "DISCORD_GATEWAY_URL": emulator.gateway_url,
        "DEEP_POSTGRES_SCHEMA": schema_dsn.rsplit("search_path=", 1)[1],
        "DEEP_TOKEN_KEYS": key_spec,
        "PYTHONUNBUFFERED": "1",
    }
    started = Runners(env, tmp_path_factory.mktemp("runner-logs"))
    yield started
    await started.stop_all()


@pytest.fixture(scope="module")
async def producer(stack_up: Settings) -> AsyncIterator[AIOKafkaProducer]:
    kafka = AIOKafkaProducer(bootstrap_servers=stack_up.kafka_bootstrap, acks="all")
    await kafka.start()
    yield kafka
    await kafka.stop()


async def produce_action(producer: AIOKafkaProducer, namespace: str, action: Action) -> None:
    await producer.send_and_wait(
        DISCORD_ACTIONS.name_in(namespace),
        DISCORD_ACTIONS.codec.encode(action),
        key=encode_key(action.bot_id),
    )


async def read_topic(
    bootstrap: str, topic: str, *, until: Callable[[list[Any]], bool], within_s: float
) -> list[Any]:
    """Every record of `topic` from the start, read until `until(records)` holds or `within_s` passes."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + within_s
        while not until(records) and asyncio.get_running_loop().time() < deadline:
            for batch in (await consumer.getmany(timeout_ms=300)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def eventually(check: Callable[[], Any], within_s: float, every_s: float = 0.2) -> Any:
    """Poll `check` (sync or async) until it returns something truthy; returns it, or the last falsy value."""
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result or asyncio.get_running_loop().time() >= deadline:
            return result
        await asyncio.sleep(every_s)


async def read_all(bootstrap: str, spec: TopicSpec, namespace: str) -> list[Any]:
    """Every record the topic holds now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(spec.name_in(namespace), p) for p in range(spec.partitions)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[Any] = []
        while True:
            behind = [tp for tp, end in ends.items() if await consumer.position(tp) < end]
            if not behind:
                return records
            for batch in (await consumer.getmany(*behind, timeout_ms=500)).values():
                records.extend(batch)
    finally:
        await consumer.stop()


@pytest.fixture(scope="module")
async def redis_client(stack_up: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(stack_up.redis_url)
    yield client
    await client.aclose()


def tone(path: Path, seconds: float, frequency: int = 440) -> Path:
    """A sine of `frequency` Hz at 1/8 of full scale (ffmpeg's lavfi source), written to `path`."""
    source = f"sine=frequency={frequency}:duration={seconds}"
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-f", "lavfi", "-i", source, str(path)], check=True)
    return path


def voice_manager(
    fleet: Fleet,
    http: aiohttp.ClientSession,
    media: aiohttp.ClientSession,
    producer: AIOKafkaProducer,
    redis_client: aioredis.Redis,
    namespace: str,
    gateway_url: str,
    library: Path,
    speech: Speech | None = None,
) -> VoiceManager:
    """A runner's voice manager for an in-process fleet: track ends go to the namespace's discord.events."""

    async def publish(envelope: EventEnvelope) -> None:
        await producer.send_and_wait(
            DISCORD_EVENTS.name_in(namespace),
            DISCORD_EVENTS.codec.encode(envelope),
            key=encode_key(envelope.key),
        )

    voice = VoiceManager(
        fleet=fleet,
        http=http,
        gateway_url=gateway_url,
        library_root=library,
        media=media,
        allow_private_media=True,
        speech=speech or Speech(None),
        publish=publish,
        store=VoiceStore(redis_client, namespace),
    )
    fleet.on_voice = voice.dispatched
    return voice
