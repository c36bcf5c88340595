from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from clickhouse_connect.driver.client import Client

from models.actions import InteractionResponse
from models.operations import DeadLetter
from models.tiers import Tier
from settings import Settings
from sinks.clickhouse.schema import ROW_TIMES
from sinks.consumer import SinkOptions, TableWriter, TopicSink
from sinks.lag import LagSampler, sample_lag
from sinks.tables import CONSUMER_LAG, TOPIC_TABLES
from streams.catalog import (
    AGENT_DECISIONS,
    DISCORD_ACTIONS,
    DISCORD_EVENTS,
    INFERENCE_RESULTS,
    TopicSpec,
    dead_letter_topic,
)
from tests.analytics.factories import T0, event, inference_result, produce, reply
from tests.data_keys import MemoryDataKeys
from tests.waiting import wait_until

pytestmark = pytest.mark.stack

TABLE_OF = {spec.name: table for spec, table in TOPIC_TABLES}


@asynccontextmanager
async def running_sinks(
    specs: list[TopicSpec],
    *,
    settings: Settings,
    clickhouse: Client,
    database: str,
    namespace: str,
    producer: AIOKafkaProducer,
    admin: AIOKafkaAdminClient,
) -> AsyncIterator[list[TopicSink]]:
    sinks = [
        TopicSink(
            spec,
            TableWriter(clickhouse, database, TABLE_OF[spec.name]),
            bootstrap=settings.kafka_bootstrap,
            namespace=namespace,
            producer=producer,
            admin=admin,
            keys=MemoryDataKeys(),
            options=SinkOptions(flush_interval_s=0.2),
        )
        for spec in specs
    ]
    tasks = [asyncio.create_task(sink.run()) for sink in sinks]
    try:
        yield sinks
    finally:
        for sink in sinks:
            sink.stop()
        await asyncio.gather(*tasks)


def count(clickhouse: Client, database: str, table: str) -> int:
    return int(clickhouse.query(f"SELECT count() FROM `{database}`.{table}").result_rows[0][0])


async def test_malformed_records_go_to_the_dead_letter_topic_and_the_sink_carries_on(
    stack_up: Settings,
    clickhouse: Client,
    database: str,
    namespace: str,
    producer: AIOKafkaProducer,
    admin: AIOKafkaAdminClient,
) -> None:
    topic = DISCORD_EVENTS.name_in(namespace)
    good = [event(n, T0 + timedelta(seconds=n)) for n in range(10)]
    valid = orjson.loads(DISCORD_EVENTS.codec.encode(good[0]))
    malformed = {
        b"not json at all": "not JSON",
        orjson.dumps({**valid, "schema_version": 9}): "schema_version",
        orjson.dumps({**valid, "bot_id": "not-a-snowflake"}): "bot_id",
    }
    # One key: one partition, so the offsets of the bad records are known from the sends.
    await produce(producer, namespace, DISCORD_EVENTS, good[:5])
    bad_offsets = {}
    for raw, expected in malformed.items():
        sent = await (await producer.send(topic, raw, b"300"))
        bad_offsets[sent.offset] = expected
    await produce(producer, namespace, DISCORD_EVENTS, good[5:])

    async with running_sinks(
        [DISCORD_EVENTS],
        settings=stack_up,
        clickhouse=clickhouse,
        database=database,
        namespace=namespace,
        producer=producer,
        admin=admin,
    ) as (sink,):
        await wait_until(
            lambda: asyncio.to_thread(lambda: count(clickhouse, database, "events") == 10), "ten event rows"
        )
    ids = clickhouse.query(f"SELECT event_id FROM `{database}`.events ORDER BY sequence").result_rows
    assert [row[0] for row in ids] == [e.event_id for e in good]

    letters = await read_all(stack_up, dead_letter_topic(DISCORD_EVENTS).name_in(namespace), expected=3)
    for letter in letters:
        assert letter.source_topic == topic
        assert letter.consumer == "sinks.events"
        assert bad_offsets[letter.offset] in letter.error
    assert {letter.offset for letter in letters} == set(bad_offsets)
    assert {letter.value.encode() for letter in letters} == set(malformed)

    # The sink committed past the bad records too: nothing is left to re-read.
    committed = await admin.list_consumer_group_offsets(sink.group_id)
    ends = await end_offsets(stack_up, list(committed))
    assert {tp: meta.offset for tp, meta in committed.items()} == ends


async def test_no_secret_or_message_text_reaches_a_row(
    stack_up: Settings,
    clickhouse: Client,
    database: str,
    namespace: str,
    producer: AIOKafkaProducer,
    admin: AIOKafkaAdminClient,
) -> None:
    secrets = ["interaction-token-not-for-analytics", "my private words", "a private answer"]
    source = event(100, T0, kind="INTERACTION_CREATE")
    message = event(101, T0, content="my private words")
    answer = InteractionResponse(
        action_id="act-secret",
        bot_id="900",
        interaction_id="70100",
        interaction_token="interaction-token-not-for-analytics",
        content="my private words",
        cause_event_id=source.event_id,
        created_at=T0,
    )
    result = inference_result(
        100, T0, tier=Tier.pro, model="m", cost_usd=0.01, prompt_tokens=1, completion_tokens=1, latency_ms=5
    )
    await produce(producer, namespace, DISCORD_EVENTS, [source, message])
    await produce(
        producer, namespace, DISCORD_ACTIONS, [answer, reply(message, after_ms=5, content="my private words")]
    )
    await produce(producer, namespace, INFERENCE_RESULTS, [result])

    async with running_sinks(
        [DISCORD_EVENTS, DISCORD_ACTIONS, INFERENCE_RESULTS],
        settings=stack_up,
        clickhouse=clickhouse,
        database=database,
        namespace=namespace,
        producer=producer,
        admin=admin,
    ):

        async def landed() -> bool:
            return await asyncio.to_thread(
                lambda: (
                    count(clickhouse, database, "actions") == 2
                    and count(clickhouse, database, "inference_usage") == 1
                    and count(clickhouse, database, "events") >= 2
                )
            )

        await wait_until(landed, "the rows of every table")

    # Every per-record table, not only those written here: none has a column that could hold the words.
    for table in ROW_TIMES:
        dump = repr(clickhouse.query(f"SELECT * FROM `{database}`.{table}").result_rows)
        assert not [secret for secret in secrets if secret in dump], table
    lengths = clickhouse.query(
        f"SELECT action_id, content_length FROM `{database}`.actions ORDER BY action_id"
    ).result_rows
    assert lengths == [("act-ev-101", len("my private words")), ("act-secret", len("my private words"))]
    invoker = clickhouse.query(
        f"SELECT author_id, content_length FROM `{database}`.events WHERE event_id = 'ev-100'"
    ).result_rows
    assert invoker == [("500", 0)]


async def test_the_lag_sampler_reports_what_a_group_has_not_committed(
    stack_up: Settings,
    clickhouse: Client,
    database: str,
    namespace: str,
    producer: AIOKafkaProducer,
    admin: AIOKafkaAdminClient,
) -> None:
    topic = AGENT_DECISIONS.name_in(namespace)
    for _ in range(10):
        await producer.send(topic, b"{}", b"k", partition=1)
    await producer.flush()
    group = f"{namespace}lag-test"
    member = AIOKafkaConsumer(
        bootstrap_servers=stack_up.kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await member.start()
    try:
        member.assign([TopicPartition(topic, 1)])
        await member.commit({TopicPartition(topic, 1): 4})
    finally:
        await member.stop()

    reader = AIOKafkaConsumer(bootstrap_servers=stack_up.kafka_bootstrap)
    await reader.start()
    try:
        samples = await sample_lag(admin, reader, [group], namespace)
    finally:
        await reader.stop()
    assert [(s.group, s.topic, s.partition, s.committed_offset, s.end_offset, s.lag) for s in samples] == [
        (group, topic, 1, 4, 10, 6)
    ]

    sampler = LagSampler(
        TableWriter(clickhouse, database, CONSUMER_LAG),
        admin,
        stack_up.kafka_bootstrap,
        groups=[group],
        topic_prefix=namespace,
        interval_s=0.1,
    )
    task = asyncio.create_task(sampler.run())
    await wait_until(
        lambda: asyncio.to_thread(lambda: count(clickhouse, database, "consumer_lag") >= 2), "two lag rows"
    )
    sampler.stop()
    await task
    rows = clickhouse.query(
        f"SELECT DISTINCT group, partition, lag FROM `{database}`.consumer_lag"
    ).result_rows
    assert rows == [(group, 1, 6)]


async def read_all(settings: Settings, topic: str, expected: int) -> list[DeadLetter]:
    reader = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest")
    await reader.start()
    letters: list[DeadLetter] = []
    try:
        async with asyncio.timeout(30):
            while len(letters) < expected:
                async for record in reader:
                    letters.append(dead_letter_topic(DISCORD_EVENTS).codec.decode(record.value))
                    break
    finally:
        await reader.stop()
    return letters


async def end_offsets(settings: Settings, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    reader = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await reader.start()
    try:
        return dict(await reader.end_offsets(partitions))
    finally:
        await reader.stop()
