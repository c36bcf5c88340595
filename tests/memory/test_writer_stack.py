"""The writer through real Kafka and Weaviate: deployments create tenants, messages become memories,
a second writer re-reading everything (a crash before commit) duplicates nothing, and a killed writer
process restarted under its instance id carries on."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from aiokafka import AIOKafkaProducer

from memory.embedding import Embedder
from memory.store import MemoryStore, connect
from memory.writer import MemoryWriter
from settings import REPO_ROOT, Settings
from streams.catalog import AGENT_DEPLOYMENTS, DISCORD_EVENTS
from tests.kafka_namespace import temporary_namespace
from tests.processors.factories import deployed, envelope, luna, message_data, routing, snowflake, user
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
    store: MemoryStore, settings: Settings, namespace: str, producer: AIOKafkaProducer, group: str
) -> tuple[MemoryWriter, asyncio.Task[None]]:
    writer = MemoryWriter(
        store,
        Embedder.from_settings(settings),
        bootstrap=settings.kafka_bootstrap,
        namespace=namespace,
        producer=producer,
        # A group of its own per run: the second run reads everything again, as after a crash before commit.
        group_id=group,
    )
    return writer, asyncio.create_task(writer.run())


async def test_messages_become_memories_once(stack_up: Settings, store: MemoryStore) -> None:
    guild, channel, bot = snowflake(), snowflake(), snowflake()
    here = deployed(luna(), guild_id=guild, bot_id=bot)
    deployment_id = here.deployment.deployment_id
    sam = user(snowflake(), "sam")
    texts = ["I have my chemistry exam next Tuesday", "my cat is called Miso", "lol"]
    async with temporary_namespace(
        stack_up.kafka_bootstrap, (DISCORD_EVENTS, AGENT_DEPLOYMENTS)
    ) as namespace:
        producer = AIOKafkaProducer(bootstrap_servers=stack_up.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            record = routing(guild, here)
            await producer.send_and_wait(
                AGENT_DEPLOYMENTS.name_in(namespace), AGENT_DEPLOYMENTS.codec.encode(record), guild.encode()
            )
            for text in texts:
                data = message_data(guild_id=guild, channel_id=channel, author=sam, content=text)
                event = envelope("MESSAGE_CREATE", data, bot_id=bot, guild_id=guild, channel_id=channel)
                await producer.send_and_wait(
                    DISCORD_EVENTS.name_in(namespace), DISCORD_EVENTS.codec.encode(event), guild.encode()
                )
            for run in range(2):
                writer, task = await run_writer(store, stack_up, namespace, producer, f"{namespace}w{run}")

                def all_written(writer: MemoryWriter = writer) -> bool:
                    return writer.written >= len(texts)

                try:
                    await wait_until(all_written, "the messages written", 120)
                finally:
                    writer.stop()
                    await task
                memories = await store.listed(deployment_id)
                assert sorted(m.record.text for m in memories) == sorted(texts)
        finally:
            await producer.stop()


def start_writer_process(namespace: str, instance_id: str, log: Path) -> subprocess.Popen[bytes]:
    """`deep memory writer` in the test namespace, a static group member."""
    env = {**os.environ, "DEEP_TOPIC_NAMESPACE": namespace}
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
