"""The catalog applies to the real broker idempotently, and envelopes travel through it intact."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient

from models.events import EventEnvelope
from ops.kafka import describe_topic
from settings import Settings
from streams.admin import apply_catalog, delete_namespace
from streams.catalog import CATALOG, DAY_MS, DEAD_LETTERS, DISCORD_EVENTS, TopicSpec
from streams.codec import encode_key

pytestmark = pytest.mark.stack


async def test_catalog_applies_twice_with_nothing_changed_the_second_time(stack_up: Settings) -> None:
    namespace = f"t{uuid4().hex[:8]}."
    try:
        first = await apply_catalog(stack_up.kafka_bootstrap, namespace)
        assert {plan.topic for plan in first} == {spec.name_in(namespace) for spec in CATALOG}
        assert all(plan.create for plan in first)

        second = await apply_catalog(stack_up.kafka_bootstrap, namespace)
        assert second == []

        admin = AIOKafkaAdminClient(bootstrap_servers=stack_up.kafka_bootstrap)
        await admin.start()
        try:
            described = await admin.describe_topics([DISCORD_EVENTS.name_in(namespace)])
            assert len(described[0]["partitions"]) == DISCORD_EVENTS.partitions
        finally:
            await admin.close()
        # The retention settings' defaults, as created: content leaves the broker after them.
        events = await describe_topic(stack_up.kafka_bootstrap, DISCORD_EVENTS.name_in(namespace))
        assert events.configs["retention.ms"] == (str(7 * DAY_MS), True)
        dead_letters = DEAD_LETTERS[DISCORD_EVENTS.name].name_in(namespace)
        assert (await describe_topic(stack_up.kafka_bootstrap, dead_letters)).configs["retention.ms"] == (
            str(14 * DAY_MS),
            True,
        )
    finally:
        deleted = await delete_namespace(stack_up.kafka_bootstrap, namespace)
    assert len(deleted) == len(CATALOG)


async def test_processes_applying_the_catalog_at_the_same_moment_all_succeed(stack_up: Settings) -> None:
    """A fleet started at once: each process plans to create the topics, one wins each creation."""
    namespace = f"t{uuid4().hex[:8]}."
    try:
        await asyncio.gather(*(apply_catalog(stack_up.kafka_bootstrap, namespace) for _ in range(3)))
        assert await apply_catalog(stack_up.kafka_bootstrap, namespace) == []
    finally:
        await delete_namespace(stack_up.kafka_bootstrap, namespace)


async def test_apply_grows_partitions_and_restores_drifted_config(stack_up: Settings) -> None:
    namespace = f"t{uuid4().hex[:8]}."
    small = TopicSpec(
        name="drift",
        key="k",
        value=EventEnvelope,
        partitions=2,
        retention_ms=1000,
        producers=(),
        consumers=(),
    )
    await apply_catalog(stack_up.kafka_bootstrap, namespace, (small,))
    bigger = TopicSpec(
        name="drift",
        key="k",
        value=EventEnvelope,
        partitions=4,
        retention_ms=2000,
        producers=(),
        consumers=(),
    )
    plans = await apply_catalog(stack_up.kafka_bootstrap, namespace, (bigger,))
    assert len(plans) == 1
    assert plans[0].grow_to == 4 and plans[0].set_config
    assert await apply_catalog(stack_up.kafka_bootstrap, namespace, (bigger,)) == []
    assert await delete_namespace(stack_up.kafka_bootstrap, namespace) == [f"{namespace}drift"]


async def test_envelope_is_produced_and_consumed_through_the_broker(stack_up: Settings) -> None:
    namespace = f"t{uuid4().hex[:8]}."
    await apply_catalog(stack_up.kafka_bootstrap, namespace, (DISCORD_EVENTS,))
    topic = DISCORD_EVENTS.name_in(namespace)
    envelopes = [
        EventEnvelope(
            event_id=f"e{i}",
            bot_id="42",
            guild_id="1001",
            channel_id="2002",
            type="MESSAGE_CREATE",
            sequence=i,
            data={"id": str(9000 + i), "content": f"message {i} ✨"},
        )
        for i in range(5)
    ]
    producer = AIOKafkaProducer(bootstrap_servers=stack_up.kafka_bootstrap)
    await producer.start()
    try:
        for envelope in envelopes:
            await producer.send_and_wait(
                topic, DISCORD_EVENTS.codec.encode(envelope), key=encode_key(envelope.key)
            )
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=stack_up.kafka_bootstrap,
        group_id=f"g{uuid4().hex}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        received: list[ConsumerRecord[bytes, bytes]] = []
        while len(received) < len(envelopes):
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, "no records arrived"
            for records in batch.values():
                received.extend(records)
    finally:
        await consumer.stop()
    await delete_namespace(stack_up.kafka_bootstrap, namespace)
    # One guild's events share a partition and keep their order.
    assert {record.partition for record in received} == {received[0].partition}
    assert [DISCORD_EVENTS.codec.decode(record.value) for record in received] == envelopes
    assert {record.key for record in received} == {b"1001"}


async def test_delete_namespace_refuses_the_production_topics(stack_up: Settings) -> None:
    with pytest.raises(ValueError, match="namespace"):
        await delete_namespace(stack_up.kafka_bootstrap, "")
