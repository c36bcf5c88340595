"""A record Kafka refuses is not lost: the worker does not acknowledge the events whose handling wrote it,
stops, and handles them again once restarted; a timer's refused outputs leave its firing unrecorded, to be
made again; an erasure is acknowledged only once Kafka has its writes. (Faust commits acknowledged offsets
after a producer flush that does not tell a refused record from a delivered one.)"""

from __future__ import annotations

from uuid import uuid4

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from models.actions import SendMessage
from models.erasure import ErasureAck, ErasureControl
from models.table_keys import UtilityKey
from processors.table_catalog import changelog_topic, partition_of
from settings import Settings
from streams.catalog import DISCORD_ACTIONS, PRIVACY_ERASURE_ACKS, PRIVACY_ERASURES
from streams.codec import encode_key
from tests.processors.conftest import Collector, Producer, Worker
from tests.processors.test_proc_worker import KAI, MIA, answer_to, message, open_guild
from tests.stored_records import stored_records
from tests.waiting import wait_until

pytestmark = pytest.mark.stack


async def set_max_record_bytes(settings: Settings, topic: str, most: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": str(most)})
        await admin.alter_configs([resource])
    finally:
        await admin.close()


async def stopped_for_refusal(worker: Worker, written_for: str) -> None:
    """The worker stopped, exiting non-zero, for records Kafka did not take."""
    process = worker.process
    assert process is not None
    await wait_until(lambda: process.poll() is not None, "the worker to stop", timeout_s=60)
    assert process.returncode != 0
    assert f"Kafka did not take the records written for {written_for}" in worker.log_path.read_text()


async def test_a_changelog_record_the_broker_refuses_stops_the_worker_and_its_event_is_handled_again(
    stack_up: Settings, namespace: str, worker: Worker, produce: Producer, collector: Collector
):
    guild = await open_guild(produce, collector)
    # The broker takes no record over 1 KB on the reminders' changelog: the reminder's is 2 KB.
    utility = changelog_topic(f"{namespace}{worker.app_id}", UtilityKey.TABLE)
    await set_max_record_bytes(stack_up, utility, 1024)
    remind = message(guild, guild.luna, KAI, f"!remind 1h {'a' * 1800}")
    await produce.event(remind)
    assert (await answer_to(collector, remind)).startswith("I'll remind you in 1h")
    await stopped_for_refusal(worker, "1 events")

    await set_max_record_bytes(stack_up, utility, 1024 * 1024)
    worker.start()
    # Handled again from the committed offset: answered a second time (the same action, which the gateway
    # performs once), and its reminder saved this time.
    answered = await collector.wait_for(
        DISCORD_ACTIONS, lambda a: a.cause_event_id == remind.event_id, count=2, within=90
    )
    assert answered[0].action_id == answered[1].action_id
    after = message(guild, guild.music, KAI, "!queue")
    await produce.event(after)
    assert await answer_to(collector, after) == "The queue is empty."
    assert worker.process is not None and worker.process.poll() is None


async def test_a_timer_firing_whose_outputs_the_broker_refuses_is_made_again_once_the_worker_restarts(
    stack_up: Settings, namespace: str, worker: Worker, produce: Producer, collector: Collector
):
    guild = await open_guild(produce, collector)
    text = "stretch " + "a" * 1800
    remind = message(guild, guild.luna, KAI, f"!remind 6s {text}")
    await produce.event(remind)
    assert await answer_to(collector, remind) == f"I'll remind you in 6s: {text}"
    # Answered: from now on the broker takes no action over 1 KB, and the reminder's is 2 KB.
    actions = DISCORD_ACTIONS.name_in(namespace)
    await set_max_record_bytes(stack_up, actions, 1024)
    await stopped_for_refusal(worker, "a timer's firing")

    await set_max_record_bytes(stack_up, actions, 1024 * 1024)
    worker.start()
    # The firing was not recorded: the restarted worker makes it, once.
    [fired] = await collector.wait_for(
        DISCORD_ACTIONS,
        lambda a: isinstance(a, SendMessage) and a.content == f"⏰ <@{KAI['id']}> {text}",
        within=90,
    )
    assert fired.guild_id == guild.id
    after = message(guild, guild.music, KAI, "!queue")
    await produce.event(after)
    assert await answer_to(collector, after) == "The queue is empty."
    assert len([a for a in collector.records[DISCORD_ACTIONS.name] if a == fired]) == 1


async def test_an_erasure_whose_writes_the_broker_refuses_is_acknowledged_once_the_restarted_worker_erased(
    stack_up: Settings, namespace: str, worker: Worker, produce: Producer, collector: Collector
):
    guild = await open_guild(produce, collector)
    kept = message(guild, guild.luna, KAI, f"!remind 1h {'a' * 1800}")
    erased = message(guild, guild.luna, MIA, "!remind 1h water the plants")
    for remind in (kept, erased):
        await produce.event(remind)
        assert (await answer_to(collector, remind)).startswith("I'll remind you in 1h")
    # The broker takes no record over 1 KB on the reminders' changelog: the guild's reminders without Mia's
    # are 2 KB.
    utility = changelog_topic(f"{namespace}{worker.app_id}", UtilityKey.TABLE)
    await set_max_record_bytes(stack_up, utility, 1024)
    control = ErasureControl(erasure_id=uuid4(), user_id=MIA["id"])
    partition = partition_of(kept.key)
    await produce.producer.send_and_wait(
        PRIVACY_ERASURES.name_in(namespace),
        PRIVACY_ERASURES.codec.encode(control),
        encode_key(str(control.erasure_id)),
        partition=partition,
    )

    async def acks() -> list[ErasureAck]:
        records = await stored_records(stack_up.kafka_bootstrap, [PRIVACY_ERASURE_ACKS.name_in(namespace)])
        decoded = [PRIVACY_ERASURE_ACKS.codec.decode(record.value) for record in records]
        return [ack for ack in decoded if ack.erasure_id == control.erasure_id]

    await stopped_for_refusal(worker, "1 events")
    assert await acks() == []

    await set_max_record_bytes(stack_up, utility, 1024 * 1024)
    worker.start()

    async def acknowledged() -> bool:
        return bool(await acks())

    await wait_until(acknowledged, "the restarted worker to acknowledge the erasure", timeout_s=90)
    [ack] = await acks()
    assert ack.partition == partition and ack.removed >= 1
