"""An erasure on a quiet changelog partition, against the running stack: a worker (subprocess) whose
changelogs compact within seconds holds two members' messages; after the erasure, and a worker restart
before its compaction markers are due, nothing else is written to the guild's partitions, yet every record
of every changelog, read raw from offset 0 (keys and values), soon holds nothing of the erased. A worker
recovering over the markers still has the other member's messages. Markers the broker refuses stop the
worker with them still pending, and the restarted worker sends them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import pytest
from aiokafka import ConsumerRecord
from pydantic import BaseModel, TypeAdapter

from models.erasure import ErasureAck, ErasureControl
from models.table_keys import ContextKey, WarnKey
from processors.compaction import MARKER_KEY, ROLLS_TABLE
from processors.table_catalog import RING_TABLES, changelog_topic
from settings import Settings
from streams.catalog import GUILD_PARTITIONS, PRIVACY_ERASURE_ACKS, PRIVACY_ERASURES
from streams.codec import encode_key
from streams.history import read_compacted
from tests.processors.conftest import Producer, Worker
from tests.processors.factories import (
    Where,
    deployed,
    envelope,
    guild_create,
    luna,
    message_event,
    routing,
    snowflake,
    user,
)
from tests.processors.test_proc_delivery import set_max_record_bytes, stopped_for_refusal
from tests.store_scan import namespace_topics
from tests.stored_records import stored_records
from tests.waiting import wait_until

pytestmark = pytest.mark.stack

APP_ID = "deep-processors"
COMPACTION_MS = 2000
WAIT_S = 60.0
ERASED, OTHER = user(snowflake(), "erin"), user(snowflake(), "otto")
SECRET = f"my secret lizard is called Zephyrine{uuid4().hex[:6]}"
OTHERS_WORDS = f"otto likes sailing{uuid4().hex[:6]}"


@pytest.fixture(scope="module")
async def compacting_worker(
    namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Worker]:
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    environment = {"DEEP_ERASURE_COMPACTION_MS": str(COMPACTION_MS)}
    worker = Worker(namespace, APP_ID, log, environment, instance_id="compacting-1")
    worker.start()
    yield worker
    worker.stop()


async def changelog_records(settings: Settings, namespace: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of every changelog of the namespace, raw, from offset 0."""
    topics = [
        t for t in await namespace_topics(settings.kafka_bootstrap, namespace) if t.endswith("-changelog")
    ]
    return await stored_records(settings.kafka_bootstrap, topics)


def naming(records: list[ConsumerRecord[bytes, bytes]], *needles: str) -> list[str]:
    """Where the records hold any of the needles (key or value bytes)."""
    return [
        f"{r.topic}[{r.partition}]@{r.offset}: {needle}"
        for r in records
        for needle in needles
        if needle.encode() in (r.key or b"") + b"\0" + (r.value or b"")
    ]


async def context_text(settings: Settings, namespace: str, where: Where) -> str:
    """The channel's context as its changelogs' latest values hold it, as JSON."""
    heads, slots, layout = RING_TABLES["context"]

    async def latest(table: str, model: type[BaseModel]) -> dict[str, Any]:
        topic = changelog_topic(f"{namespace}{APP_ID}", table)
        adapter: TypeAdapter[Any] = TypeAdapter(model)
        raw = await read_compacted(settings.kafka_bootstrap, topic, set(range(GUILD_PARTITIONS)))
        return {key: adapter.validate_json(value) for key, value in raw.items() if value is not None}

    ring = layout.over(await latest(heads, layout.head_model), await latest(slots, layout.slot_model))
    value = ring.get(ContextKey(where.guild_id, where.channel_id).encode())
    return "" if value is None else value.model_dump_json()


async def restarted(worker: Worker) -> None:
    worker.kill()
    worker.start()


async def planted(
    settings: Settings, namespace: str, produce: Producer, said: list[tuple[dict[str, Any], str]]
) -> Where:
    """A new guild with Luna, whose channel's context holds each member's words (sent again until the worker
    applied the guild: a message before it concerns no one)."""
    guild, channel, bot = snowflake(), snowflake(), snowflake()
    await produce.routing(routing(guild, deployed(luna(), guild_id=guild, bot_id=bot)))
    created = guild_create(guild, owner_id=snowflake(), channels={channel: "general"}, roles={})
    await produce.event(envelope("GUILD_CREATE", created, bot_id=bot, guild_id=guild))
    where = Where(bot_id=bot, guild_id=guild, channel_id=channel)

    async def held() -> bool:
        text = await context_text(settings, namespace, where)
        if all(words in text for _, words in said):
            return True
        for member, words in said:
            await produce.event(message_event(where, member, f"luna, {words}"))
        return False

    await wait_until(held, "the members' messages in the context", timeout_s=WAIT_S, every_s=2.0)
    return where


async def erasure_sent(settings: Settings, namespace: str, produce: Producer, user_id: str) -> ErasureControl:
    """The user's erasure, its control record on every partition."""
    control = ErasureControl(erasure_id=uuid4(), user_id=user_id)
    topic = PRIVACY_ERASURES.name_in(namespace)
    for partition in range(PRIVACY_ERASURES.partitions):
        await produce.producer.send_and_wait(
            topic,
            PRIVACY_ERASURES.codec.encode(control),
            encode_key(str(control.erasure_id)),
            partition=partition,
        )
    return control


async def acknowledged_everywhere(settings: Settings, namespace: str, control: ErasureControl) -> None:
    async def acknowledged() -> bool:
        records = await stored_records(settings.kafka_bootstrap, [PRIVACY_ERASURE_ACKS.name_in(namespace)])
        acks: list[ErasureAck] = [PRIVACY_ERASURE_ACKS.codec.decode(r.value) for r in records]
        return {a.partition for a in acks if a.erasure_id == control.erasure_id} == set(
            range(GUILD_PARTITIONS)
        )

    await wait_until(acknowledged, "the worker to acknowledge every partition", timeout_s=WAIT_S)


async def test_a_quiet_partition_loses_the_erased_within_the_bound_and_recovers_the_others(
    stack_up: Settings, namespace: str, compacting_worker: Worker, produce: Producer
) -> None:
    where = await planted(stack_up, namespace, produce, [(ERASED, SECRET), (OTHER, OTHERS_WORDS)])
    assert naming(await changelog_records(stack_up, namespace), SECRET)

    await acknowledged_everywhere(
        stack_up, namespace, await erasure_sent(stack_up, namespace, produce, ERASED["id"])
    )
    # Killed before the markers are due: the restarted worker still sends them.
    await restarted(compacting_worker)

    async def clean() -> bool:
        return not naming(await changelog_records(stack_up, namespace), ERASED["id"], SECRET)

    try:
        await wait_until(clean, "no changelog record naming the erased", timeout_s=WAIT_S, every_s=1.0)
    except AssertionError:
        left = naming(await changelog_records(stack_up, namespace), ERASED["id"], SECRET)
        pytest.fail("still on the broker:\n" + "\n".join(left) + "\n" + compacting_worker.log_tail())
    records = await changelog_records(stack_up, namespace)
    assert any(r.key == MARKER_KEY.encode() and r.value is None for r in records)
    assert OTHERS_WORDS in await context_text(stack_up, namespace, where)

    # A worker recovering over the markers still holds the other member's messages: a new one joins them.
    await restarted(compacting_worker)
    later = f"luna, still here {uuid4().hex[:6]}"
    await produce.event(message_event(where, OTHER, later))

    async def joined() -> bool:
        text = await context_text(stack_up, namespace, where)
        return later in text and OTHERS_WORDS in text

    await wait_until(joined, "the recovered worker to add a message to the context", timeout_s=WAIT_S)


async def pending_rolls(settings: Settings, namespace: str) -> list[bytes]:
    """The partitions' compaction markers still to send, as their changelog holds them."""
    topic = changelog_topic(f"{namespace}{APP_ID}", ROLLS_TABLE)
    latest = await read_compacted(settings.kafka_bootstrap, topic, set(range(GUILD_PARTITIONS)))
    return [value for value in latest.values() if value is not None]


async def test_compaction_markers_the_broker_refuses_stop_the_worker_and_are_sent_once_it_restarts(
    stack_up: Settings, namespace: str, compacting_worker: Worker, produce: Producer
) -> None:
    """A partition's markers are recorded as sent only once Kafka has every one: refused, the worker stops
    with them pending, and sends them once restarted."""
    member = user(snowflake(), "rhea")
    await planted(stack_up, namespace, produce, [(member, f"rhea keeps bees {uuid4().hex[:6]}")])

    async def none_pending() -> bool:
        return not await pending_rolls(stack_up, namespace)

    # The test before may have left markers to send: they would be refused too.
    await wait_until(none_pending, "the markers pending before to be sent", timeout_s=WAIT_S)
    # Nothing writes the warns' changelog here but the markers, and the broker now takes no record on it.
    warns = changelog_topic(f"{namespace}{APP_ID}", WarnKey.TABLE)
    await set_max_record_bytes(stack_up, warns, 1)
    try:
        await erasure_sent(stack_up, namespace, produce, member["id"])
        await stopped_for_refusal(compacting_worker, "the compaction markers of partition")
        assert await pending_rolls(stack_up, namespace)
    finally:
        await set_max_record_bytes(stack_up, warns, 1024 * 1024)

    compacting_worker.start()

    async def marked() -> bool:
        records = await stored_records(stack_up.kafka_bootstrap, [warns])
        return any(r.key == MARKER_KEY.encode() and r.value is None for r in records)

    await wait_until(marked, "the restarted worker to send the markers", timeout_s=WAIT_S)
    assert compacting_worker.process is not None and compacting_worker.process.poll() is None
