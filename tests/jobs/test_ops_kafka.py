"""`deep ops` over Kafka: topics, consumer lag, and dead letters inspected and re-driven exactly once."""

from __future__ import annotations

from collections import Counter

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from typer.testing import CliRunner

from models.operations import DeadLetter
from ops.cli import ops_app, preview
from ops.kafka import REDRIVE_HEADER, consumer_lag, describe_topic, inspect_dead_letters, list_topics, redrive
from settings import Settings
from streams.admin import apply_catalog
from streams.catalog import AGENT_DECISIONS, DEAD_LETTERS, DISCORD_EVENTS
from streams.dead_letters import dead_letter
from tests.jobs.factories import read_records

pytestmark = pytest.mark.stack

# Rich folds cells to the terminal's width; wide enough, every value is on one line.
WIDE = {"COLUMNS": "300"}
BAD_VALUES = {b"{not json": "g1", b"\xff\xfe binary": "g2", b'{"schema_version": 1}': "g1"}


async def test_topics_list_and_describe(
    stack_up: Settings, namespace: str, producer: AIOKafkaProducer
) -> None:
    decisions = AGENT_DECISIONS.name_in(namespace)
    for partition in (0, 0, 3):
        await producer.send(decisions, b"{}", key=b"k", partition=partition)
    await producer.flush()
    topics = {topic.name: topic for topic in await list_topics(stack_up.kafka_bootstrap, namespace)}
    overview = topics[decisions]
    assert (overview.in_catalog, overview.partitions, overview.records) == (True, 12, 3)
    assert overview.cleanup_policy == "delete" and overview.retention_ms == str(AGENT_DECISIONS.retention_ms)

    described = await describe_topic(stack_up.kafka_bootstrap, decisions)
    assert [(p.partition, p.end_offset) for p in described.partitions if p.end_offset] == [(0, 2), (3, 1)]
    assert described.configs["retention.ms"] == (str(AGENT_DECISIONS.retention_ms), True)
    assert described.configs["max.message.bytes"][1] is False  # a broker default
    with pytest.raises(LookupError):
        await describe_topic(stack_up.kafka_bootstrap, f"{namespace}no.such.topic")


@pytest.fixture(scope="module")
async def lagging_group(stack_up: Settings, namespace: str, producer: AIOKafkaProducer) -> str:
    """A group 2 behind on partition 1 of the events topic and caught up on partition 4."""
    events = DISCORD_EVENTS.name_in(namespace)
    for partition, count in ((1, 5), (4, 3)):
        for _ in range(count):
            await producer.send(events, b"{}", key=b"k", partition=partition)
    await producer.flush()
    group = f"{namespace}lag-probe"
    consumer = AIOKafkaConsumer(bootstrap_servers=stack_up.kafka_bootstrap, group_id=group)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(events, 1), TopicPartition(events, 4)])
        await consumer.commit({TopicPartition(events, 1): 3, TopicPartition(events, 4): 3})
    finally:
        await consumer.stop()
    return group


async def test_lag_per_group_topic_and_partition(
    stack_up: Settings, namespace: str, lagging_group: str
) -> None:
    rows = await consumer_lag(stack_up.kafka_bootstrap, [lagging_group], namespace)
    assert [(r.group, r.topic, r.partition, r.committed_offset, r.end_offset, r.lag) for r in rows] == [
        (lagging_group, DISCORD_EVENTS.name_in(namespace), 1, 3, 5, 2),
        (lagging_group, DISCORD_EVENTS.name_in(namespace), 4, 3, 3, 0),
    ]


def test_lag_command_prints_the_table(namespace: str, lagging_group: str) -> None:
    result = CliRunner(env=WIDE).invoke(ops_app, ["lag", "--group", lagging_group, "--namespace", namespace])
    assert result.exit_code == 0, result.output
    assert "2 records behind in all" in result.output
    assert lagging_group in result.output


@pytest.fixture(scope="module")
async def dead_letters(stack_up: Settings, namespace: str, producer: AIOKafkaProducer) -> str:
    """Three unreadable events on a source topic of their own, dead-lettered as the consumers do it."""
    source_namespace = f"{namespace}dlq-source."
    await apply_catalog(stack_up.kafka_bootstrap, source_namespace, (DISCORD_EVENTS,))
    source = DISCORD_EVENTS.name_in(source_namespace)
    for value, key in BAD_VALUES.items():
        await producer.send(source, value, key=key.encode(), partition=0)
    await producer.flush()
    letters = DEAD_LETTERS[DISCORD_EVENTS.name]
    for record in await read_records(stack_up.kafka_bootstrap, source):
        letter = dead_letter(record, "CodecError: bad", "processors")
        await producer.send(letters.name_in(namespace), letters.codec.encode(letter), key=record.key)
    await producer.flush()
    return source


async def test_dead_letters_are_inspected_with_their_origin(
    stack_up: Settings, namespace: str, dead_letters: str
) -> None:
    topic = DEAD_LETTERS[DISCORD_EVENTS.name].name_in(namespace)
    entries = await inspect_dead_letters(stack_up.kafka_bootstrap, topic)
    letters = [entry.letter for entry in entries]
    assert all(isinstance(letter, DeadLetter) for letter in letters)
    assert sorted((d.source_topic, d.offset, d.key, d.value_encoding) for d in letters if d) == [
        (dead_letters, 0, "g1", "utf-8"),
        (dead_letters, 1, "g2", "base64"),
        (dead_letters, 2, "g1", "utf-8"),
    ]
    assert not any(entry.redriven for entry in entries)


async def test_redrive_reproduces_the_original_bytes_once(
    stack_up: Settings, namespace: str, dead_letters: str
) -> None:
    topic = DEAD_LETTERS[DISCORD_EVENTS.name].name_in(namespace)
    first = await redrive(stack_up.kafka_bootstrap, topic, limit=2)
    assert (first.redriven, first.remaining, first.by_target) == (2, 1, {dead_letters: 2})
    second = await redrive(stack_up.kafka_bootstrap, topic)
    third = await redrive(stack_up.kafka_bootstrap, topic)
    assert (second.redriven, second.remaining, third.redriven) == (1, 0, 0)

    records = await read_records(stack_up.kafka_bootstrap, dead_letters)
    redriven = [(r.key, r.value) for r in records if any(name == REDRIVE_HEADER for name, _ in r.headers)]
    assert Counter(redriven) == Counter((key.encode(), value) for value, key in BAD_VALUES.items())
    assert len(records) == 2 * len(BAD_VALUES)  # each original once, each re-driven copy once
    assert await inspect_dead_letters(stack_up.kafka_bootstrap, topic) == []
    every = await inspect_dead_letters(stack_up.kafka_bootstrap, topic, include_redriven=True)
    assert len(every) == len(BAD_VALUES) and all(entry.redriven for entry in every)


def test_deadletter_inspect_command_shows_the_value_preview(namespace: str, dead_letters: str) -> None:
    result = CliRunner(env=WIDE).invoke(
        ops_app, ["deadletter", "inspect", "discord.events", "--all", "--namespace", namespace]
    )
    assert result.exit_code == 0, result.output
    assert "{not json" in result.output and "base64:" in result.output


async def test_a_letter_that_keeps_only_the_start_of_its_record_is_not_redriven(
    stack_up: Settings, namespace: str, producer: AIOKafkaProducer
) -> None:
    """Re-driving the start of a record would put a record on the topic that was never sent: the letter is
    passed, counted apart, and names where the whole record is."""
    letters_namespace = f"{namespace}dlq-partial."
    letters = DEAD_LETTERS[DISCORD_EVENTS.name]
    await apply_catalog(stack_up.kafka_bootstrap, letters_namespace, (DISCORD_EVENTS, letters))
    topic, source = letters.name_in(letters_namespace), DISCORD_EVENTS.name_in(letters_namespace)
    large = ConsumerRecord(source, 0, 7, 0, 0, b"g1", b"\xff" * 300_000, None, 1, 300_000, [])
    small = ConsumerRecord(source, 0, 8, 0, 0, b"g1", b"{not json", None, 1, 9, [])
    for record in (large, small):
        await producer.send(topic, letters.codec.encode(dead_letter(record, "bad", "processors")), key=b"g1")
    await producer.flush()

    first, _ = await inspect_dead_letters(stack_up.kafka_bootstrap, topic)
    assert first.letter is not None and first.letter.original_bytes == 300_000
    assert preview(first).endswith("… (the start of 300,000 bytes)")
    report = await redrive(stack_up.kafka_bootstrap, topic)
    assert (report.redriven, report.partial, report.remaining) == (1, 1, 0)
    assert [r.value for r in await read_records(stack_up.kafka_bootstrap, source)] == [b"{not json"]
