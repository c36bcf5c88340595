"""A record Kafka refuses is not lost: the worker does not acknowledge the events whose handling wrote it,
stops, and handles them again once restarted. (Faust commits acknowledged offsets after a producer flush
that does not tell a refused record from a delivered one.)"""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from models.table_keys import UtilityKey
from processors.tables import changelog_topic
from settings import Settings
from streams.catalog import DISCORD_ACTIONS
from tests.processors.conftest import Collector, Producer, Worker
from tests.processors.test_proc_worker import KAI, answer_to, message, open_guild
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
    process = worker.process
    assert process is not None
    await wait_until(lambda: process.poll() is not None, "the worker to stop", timeout_s=60)
    assert process.returncode != 0
    assert "Kafka refused records written for 1 events" in worker.log_path.read_text()

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
