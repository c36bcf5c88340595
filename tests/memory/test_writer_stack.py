"""The writer through real Kafka and Weaviate: deployments create tenants, messages become memories,
a second writer re-reading everything (a crash before commit) duplicates nothing, a killed writer
process restarted under its instance id carries on; importance rated and reflections written by a
model, or without one by the heuristic and extractive reflection."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from uuid import UUID, uuid4

import openai
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from emulator.openai import Behaviour, OpenAICompatibleServer
from emulator.openai.server import RecordedCall
from memory.embedding import Embedder
from memory.model import MemoryModel
from memory.scoring import RATED_PER_PROMPT
from memory.store import MemoryStore, connect
from memory.writer import SWEEP_CLAIM_PREFIX, SWEEP_INTERVAL_S, MemoryWriter, claim_sweep
from models.agent import MemoryConfig
from models.deployments import DeployedAgent
from models.memory import MemoryKind, StoredMemory
from settings import REPO_ROOT, Settings
from streams.catalog import AGENT_DEPLOYMENTS, DISCORD_EVENTS
from tests.data_keys import MemoryDataKeys
from tests.kafka_namespace import temporary_namespace
from tests.processors.factories import (
    T0,
    deployed,
    envelope,
    guild_create,
    luna,
    message_data,
    routing,
    snowflake,
    user,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.stack


@pytest.fixture
async def store(stack_up: Settings) -> AsyncIterator[MemoryStore]:
    client = connect(stack_up)
    await client.connect()
    store = MemoryStore(client, f"TestWriter{uuid4().hex}")
    try:
        yield store
    finally:
        await client.collections.delete(store.name)
        await client.close()


async def run_writer(
    store: MemoryStore,
    settings: Settings,
    namespace: str,
    producer: AIOKafkaProducer,
    group: str,
    model: MemoryModel | None = None,
) -> tuple[MemoryWriter, asyncio.Task[None]]:
    writer = MemoryWriter(
        store,
        Embedder.from_settings(settings),
        bootstrap=settings.kafka_bootstrap,
        namespace=namespace,
        producer=producer,
        keys=MemoryDataKeys(),
        # A group of its own per run: the second run reads everything again, as after a crash before commit.
        group_id=group,
        model=model,
    )
    return writer, asyncio.create_task(writer.run())


async def publish(
    producer: AIOKafkaProducer, namespace: str, here: DeployedAgent, channel: str, texts: Sequence[str]
) -> None:
    """The deployment's routing, the guild with the channel, then each text said by Sam in it, a minute
    apart."""
    guild, bot = here.deployment.guild_id, here.deployment.bot_id
    sam = user(snowflake(), "sam")
    await producer.send_and_wait(
        AGENT_DEPLOYMENTS.name_in(namespace),
        AGENT_DEPLOYMENTS.codec.encode(routing(guild, here)),
        guild.encode(),
    )
    await name_channel(producer, namespace, here, channel)
    for minute, text in enumerate(texts):
        at = T0 + timedelta(minutes=minute)
        data = message_data(guild_id=guild, channel_id=channel, author=sam, content=text, at=at)
        event = envelope("MESSAGE_CREATE", data, bot_id=bot, guild_id=guild, channel_id=channel)
        await producer.send_and_wait(
            DISCORD_EVENTS.name_in(namespace), DISCORD_EVENTS.codec.encode(event), guild.encode()
        )


async def name_channel(producer: AIOKafkaProducer, namespace: str, here: DeployedAgent, channel: str) -> None:
    """The bot's GUILD_CREATE naming the channel #general, one the seed Luna keeps to."""
    guild, bot = here.deployment.guild_id, here.deployment.bot_id
    created = guild_create(guild, owner_id=snowflake(), channels={channel: "general"})
    event = envelope("GUILD_CREATE", created, bot_id=bot, guild_id=guild)
    await producer.send_and_wait(
        DISCORD_EVENTS.name_in(namespace), DISCORD_EVENTS.codec.encode(event), guild.encode()
    )


@asynccontextmanager
async def kafka(settings: Settings) -> AsyncIterator[tuple[str, AIOKafkaProducer]]:
    """A temporary namespace with the writer's topics, and a producer."""
    async with temporary_namespace(
        settings.kafka_bootstrap, (DISCORD_EVENTS, AGENT_DEPLOYMENTS)
    ) as namespace:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            yield namespace, producer
        finally:
            await producer.stop()


async def test_messages_become_memories_once(stack_up: Settings, store: MemoryStore) -> None:
    here = deployed(luna(), guild_id=snowflake(), bot_id=snowflake())
    texts = ["I have my chemistry exam next Tuesday", "my cat is called Miso", "lol"]
    async with kafka(stack_up) as (namespace, producer):
        await publish(producer, namespace, here, snowflake(), texts)
        for run in range(2):
            writer, task = await run_writer(store, stack_up, namespace, producer, f"{namespace}w{run}")

            def all_written(writer: MemoryWriter = writer) -> bool:
                return writer.written >= len(texts)

            try:
                await wait_until(all_written, "the messages written", 120)
            finally:
                writer.stop()
                await task
            memories = await store.listed(here.deployment.deployment_id)
            assert sorted(m.record.text for m in memories) == sorted(texts)


async def test_the_sweep_deletes_the_memories_older_than_the_retention(
    stack_up: Settings, store: MemoryStore
) -> None:
    here = deployed(luna(), guild_id=snowflake(), bot_id=snowflake())
    texts = ["I have my chemistry exam next Tuesday", "my cat is called Miso"]  # said at T0, T0 + 1 minute
    async with kafka(stack_up) as (namespace, producer):
        await publish(producer, namespace, here, snowflake(), texts)
        writer, task = await run_writer(store, stack_up, namespace, producer, f"{namespace}w")
        try:
            await wait_until(lambda: writer.written >= len(texts), "the messages written", 120)
        finally:
            writer.stop()
            await task
    deployment_id = here.deployment.deployment_id
    writer.retention_days = 30
    assert await writer.sweep(T0 + timedelta(days=30)) == 0
    assert await writer.sweep(T0 + timedelta(days=30, seconds=30)) == 1
    assert [m.record.text for m in await store.listed(deployment_id)] == texts[1:]
    writer.retention_days = 0  # memories kept
    assert await writer.sweep(T0 + timedelta(days=3650)) == 0
    assert [m.record.text for m in await store.listed(deployment_id)] == texts[1:]


async def test_one_writer_sweeps_a_collection_per_interval(stack_up: Settings) -> None:
    collection, other = f"Test{uuid4().hex}", f"Test{uuid4().hex}"
    redis = Redis.from_url(stack_up.redis_url)
    try:
        assert await claim_sweep(redis, collection)
        # Another writer, or this one restarted, within the interval: the sweep is done already.
        assert not await claim_sweep(redis, collection)
        assert await claim_sweep(redis, other)
        ttl = await redis.ttl(f"{SWEEP_CLAIM_PREFIX}{collection}")
        assert SWEEP_INTERVAL_S - 60 < ttl <= SWEEP_INTERVAL_S
        # Each interval's claim expires, and the next writer to look sweeps.
        await redis.delete(f"{SWEEP_CLAIM_PREFIX}{collection}")
        assert await claim_sweep(redis, collection)
    finally:
        await redis.delete(f"{SWEEP_CLAIM_PREFIX}{collection}", f"{SWEEP_CLAIM_PREFIX}{other}")
        await redis.aclose()
    # Without Redis every writer sweeps: the retention is kept.
    assert await claim_sweep(None, collection)


def thinking_model(call: RecordedCall) -> str:
    """Rates every memory asked about 9; reflects on statements 1 and 2 (and one that was not shown)."""
    if call.last_user.startswith("Statements:"):
        return "Question: What is Sam busy with?\nAnswer: An exam, and a cat.\nBecause of: 1, 2, 99"
    return "\n".join(f"{n}: 9" for n in range(1, RATED_PER_PROMPT + 1))


async def reflected(
    settings: Settings,
    store: MemoryStore,
    here: DeployedAgent,
    texts: Sequence[str],
    model: MemoryModel | None,
) -> list[StoredMemory]:
    """Every memory of the deployment once the writer (with `model`, or none) has reflected on `texts`."""
    async with kafka(settings) as (namespace, producer):
        await publish(producer, namespace, here, snowflake(), texts)
        writer, task = await run_writer(store, settings, namespace, producer, f"{namespace}w", model)

        async def reflection_stored() -> list[StoredMemory]:
            written = writer.written
            memories = await store.listed(here.deployment.deployment_id)
            kinds = [m.record.kind for m in memories]
            # Everything written is listed: the reflections of one insert become visible one by one, and the
            # first one seen alone is not the whole answer.
            return memories if MemoryKind.reflection in kinds and len(memories) == written else []

        try:
            # The tenant exists once the first memories are written.
            await wait_until(lambda: writer.written >= len(texts), "the messages written", 120)
            return await wait_until(reflection_stored, "a reflection stored", 120)
        finally:
            writer.stop()
            await task


async def test_a_model_rates_importance_and_reflects_citing_stored_memories(
    stack_up: Settings, store: MemoryStore
) -> None:
    agent = luna()
    agent = agent.model_copy(update={"memory": MemoryConfig(model="thinker", reflection_threshold=10)})
    here = deployed(agent, guild_id=snowflake(), bot_id=snowflake())
    texts = ["I have my chemistry exam next Tuesday", "my cat is called Miso", "lol"]
    async with OpenAICompatibleServer(Behaviour(models=[]), responder=thinking_model) as server:
        model = MemoryModel(openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0))
        try:
            memories = await reflected(stack_up, store, here, texts, model)
        finally:
            await model.close()
    importance = {m.record.text: m.record.importance for m in memories}
    # "lol" is clearly unimportant to the heuristic: the model is not asked about it.
    assert importance["I have my chemistry exam next Tuesday"] == 9 and importance["lol"] == 2
    (reflection,) = [m.record for m in memories if m.record.kind is MemoryKind.reflection]
    assert reflection.text == "What is Sam busy with? An exam, and a cat."
    by_id = {m.id: m.record.text for m in memories}
    assert sorted(by_id[c] for c in reflection.cites) == sorted(texts[:2])


async def test_without_a_model_the_reflection_is_extractive(stack_up: Settings, store: MemoryStore) -> None:
    agent = luna().model_copy(update={"memory": MemoryConfig(reflection_threshold=10)})
    here = deployed(agent, guild_id=snowflake(), bot_id=snowflake())
    texts = ["I really love hiking", "hiking in the alps was great", "I'm going to Japan next month"]
    memories = await reflected(stack_up, store, here, texts, None)
    reflections = [m.record for m in memories if m.record.kind is MemoryKind.reflection]
    assert any(r.text.startswith("Recurring topics lately: hiking") for r in reflections), [
        (m.record.kind.value, m.record.text, m.record.at.isoformat()) for m in memories
    ]
    stored_ids = {m.id for m in memories}
    assert all(r.cites and set(r.cites) <= stored_ids for r in reflections)


def start_writer_process(namespace: str, instance_id: str, log: Path) -> subprocess.Popen[bytes]:
    """`deep memory writer` in the test namespace, a static group member."""
    # The messages are dated from T0, a fixed day: no retention may age them out while the test runs.
    env = {**os.environ, "DEEP_TOPIC_NAMESPACE": namespace, "DEEP_RETENTION_MEMORIES_DAYS": "0"}
    deep = str(Path(sys.executable).with_name("deep"))
    with log.open("ab") as out:
        return subprocess.Popen(
            [deep, "memory", "writer", "--instance-id", instance_id],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_a_killed_writer_restarted_under_its_instance_id_carries_on(
    stack_up: Settings, tmp_path: Path
) -> None:
    guild, channel, bot = snowflake(), snowflake(), snowflake()
    here = deployed(luna(), guild_id=guild, bot_id=bot)
    deployment_id = here.deployment.deployment_id
    sam = user(snowflake(), "sam")
    log = tmp_path / "writer.log"
    client = connect(stack_up)
    await client.connect()
    # The process writes to the shared collection: only this test's tenant is read, and it is deleted.
    store = MemoryStore(client)
    async with temporary_namespace(
        stack_up.kafka_bootstrap, (DISCORD_EVENTS, AGENT_DEPLOYMENTS)
    ) as namespace:
        producer = AIOKafkaProducer(bootstrap_servers=stack_up.kafka_bootstrap, acks="all")
        await producer.start()

        async def say(text: str) -> None:
            data = message_data(guild_id=guild, channel_id=channel, author=sam, content=text)
            event = envelope("MESSAGE_CREATE", data, bot_id=bot, guild_id=guild, channel_id=channel)
            await producer.send_and_wait(
                DISCORD_EVENTS.name_in(namespace), DISCORD_EVENTS.codec.encode(event), guild.encode()
            )

        async def remembered(deployment: UUID = deployment_id) -> list[str]:
            if not await client.collections.exists(store.name):
                return []
            if not await client.collections.use(store.name).tenants.exists(str(deployment)):
                return []
            return sorted(m.record.text for m in await store.listed(deployment))

        writer = start_writer_process(namespace, f"{namespace}memory", log)
        try:
            record = routing(guild, here)
            await producer.send_and_wait(
                AGENT_DEPLOYMENTS.name_in(namespace), AGENT_DEPLOYMENTS.codec.encode(record), guild.encode()
            )
            await name_channel(producer, namespace, here, channel)
            await say("my cat is called Miso")

            async def first_written() -> bool:
                return await remembered() == ["my cat is called Miso"]

            await wait_until(first_written, f"the first memory (log: {log})", 120, every_s=0.5)
            writer.send_signal(signal.SIGKILL)
            writer.wait(10)
            await say("I have my chemistry exam next Tuesday")
            restarted_at = time.monotonic()
            writer = start_writer_process(namespace, f"{namespace}memory", log)

            async def second_written() -> bool:
                return len(await remembered()) == 2

            await wait_until(second_written, f"the memory said while down (log: {log})", 120, every_s=0.5)
            # Reported, not asserted: the machine's load decides it (the model loads on each start).
            recovered_s = time.monotonic() - restarted_at
            print(f"writer restarted under its instance id wrote after {recovered_s:.1f} s")
        finally:
            writer.terminate()
            writer.wait(30)
            await producer.stop()
            if await client.collections.exists(store.name):
                await store.delete_tenant(deployment_id)
            await client.close()
