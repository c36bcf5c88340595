"""A topic's records as the broker stores them, for tests that look for what must not be in their bytes."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.catalog import TopicSpec


async def stored_values(bootstrap: str, namespace: str, spec: TopicSpec) -> list[bytes]:
    """Every record value of the topic, from the start to its end now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    values: list[bytes] = []
    try:
        partitions = [TopicPartition(spec.name_in(namespace), p) for p in range(spec.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        while [tp for tp, offset in end.items() if await consumer.position(tp) < offset]:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                values.extend(record.value for record in records if record.value is not None)
    finally:
        await consumer.stop()
    return values
