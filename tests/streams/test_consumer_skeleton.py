"""The at-least-once consumer skeleton against the running Kafka: commits, rebalances, dead letters,
backpressure, and a member killed mid-stream."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from models.operations import DeadLetter
from settings import Settings
from streams.catalog import DEAD_LETTERS, DISCORD_ACTIONS
from streams.consumer import AtLeastOnceConsumer, ConsumerOptions, ConsumerService, Fetch
from tests.kafka_namespace import temporary_namespace
from tests.waiting import wait_until

pytestmark = pytest.mark.stack

DEAD_LETTER_SPEC = DEAD_LETTERS[DISCORD_ACTIONS.name]


class Holding(ConsumerService):
    """Holds each record until the test finishes it; gives up on a record whose value is b"poison"."""

    def __init__(
        self, settings: Settings, namespace: str, producer: AIOKafkaProducer, group: str, **overrides: Any
    ) -> None:
        self.client_id = f"holding-{uuid4().hex[:6]}"
        options = ConsumerOptions(
            group_id=group,
            client_id=self.client_id,
            consumer_name="skeleton-test",
            fetch=Fetch(timeout_s=0.05, max_records=500),
            commit_interval_s=None,
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
        )
        self.consumer = AtLeastOnceConsumer(
            self,
            [DISCORD_ACTIONS],
            namespace=namespace,
            bootstrap=settings.kafka_bootstrap,
            producer=producer,
            options=replace(options, **overrides),
        )
        self.group, self.namespace = group, namespace
        self.seen: list[int] = []  # offsets of partition 0, in the order they arrived
        self.waiting: dict[int, TopicPartition] = {}
        self.polls = 0
        self.revoked: list[set[TopicPartition]] = []

    async def apply(self, fetched: Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        self.polls += 1
        for tp, records in fetched.items():
            for record in records:
                self.seen.append(record.offset)
                if record.value == b"poison":
                    await self.consumer.dead_letter(record, "gave up")
                    self.consumer.done(tp, record.offset)
                else:
                    self.waiting[record.offset] = tp

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        # Abandons the unfinished work of the partitions: it is redelivered to their next owner.
        self.revoked.append(partitions)
        self.waiting = {offset: tp for offset, tp in self.waiting.items() if tp not in partitions}

    def finish(self, *offsets: int) -> None:
        for offset in offsets:
            self.consumer.done(self.waiting.pop(offset), offset)


@pytest.fixture
async def namespace(stack_up: Settings) -> AsyncIterator[str]:
    async with temporary_namespace(stack_up.kafka_bootstrap, (DISCORD_ACTIONS, DEAD_LETTER_SPEC)) as ns:
        yield ns


@pytest.fixture
async def producer(stack_up: Settings) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=stack_up.kafka_bootstrap, acks="all")
    await producer.start()
    yield producer
    await producer.stop()


@asynccontextmanager
async def running(service: Holding) -> AsyncIterator[Holding]:
    await service.consumer.start()
    run = asyncio.create_task(service.consumer.run())
    try:
        yield service
    finally:
        service.consumer.stop()
        await run
        await service.consumer.close()


def first_partition(namespace: str) -> TopicPartition:
    return TopicPartition(DISCORD_ACTIONS.name_in(namespace), 0)


async def produce(producer: AIOKafkaProducer, namespace: str, *values: bytes) -> None:
    for value in values:
        await producer.send_and_wait(DISCORD_ACTIONS.name_in(namespace), value, partition=0)


async def committed(admin: AIOKafkaAdminClient, group: str, tp: TopicPartition) -> int:
    offsets = await admin.list_consumer_group_offsets(group, partitions=[tp])
    return offsets[tp].offset if tp in offsets else -1


async def finish_and_commit(member: Holding, admin: AIOKafkaAdminClient, *offsets: int) -> int:
    """Finish these records, commit, and return the group's committed offset of partition 0."""
    member.finish(*offsets)
    await member.consumer.commit()
    return await committed(admin, member.group, first_partition(member.namespace))


async def test_out_of_order_completion_commits_only_the_done_prefix(
    stack_up: Settings, namespace: str, producer: AIOKafkaProducer, admin: AIOKafkaAdminClient
) -> None:
    group = f"skeleton-{uuid4().hex[:8]}"
    await produce(producer, namespace, b"a", b"b", b"c")
    async with running(Holding(stack_up, namespace, producer, group)) as member:
        await wait_until(lambda: len(member.seen) == 3, "the three records")
        assert await finish_and_commit(member, admin, 2, 1) == 0
        assert await finish_and_commit(member, admin, 0) == 3


async def test_a_revocation_commits_what_is_done_and_redelivers_what_was_abandoned(
    stack_up: Settings, namespace: str, producer: AIOKafkaProducer, admin: AIOKafkaAdminClient
) -> None:
    group, tp = f"skeleton-{uuid4().hex[:8]}", first_partition(namespace)
    await produce(producer, namespace, b"a", b"b", b"c")
    async with running(Holding(stack_up, namespace, producer, group)) as first:
        await wait_until(lambda: len(first.seen) == 3, "the three records")
        first.finish(0, 2)  # 1 is still in flight when the second member joins
        async with running(Holding(stack_up, namespace, producer, group)) as second:
            await wait_until(
                lambda: first.seen.count(1) + second.seen.count(1) == 2,
                "offset 1 redelivered after the rebalance",
                timeout_s=60,
            )
            assert any(tp in revoked for revoked in first.revoked)
            assert first.seen.count(0) + second.seen.count(0) == 1  # done and committed: never again
            assert await committed(admin, group, tp) == 1
            owner = first if 1 in first.waiting else second
            await wait_until(lambda: set(owner.waiting) == {1, 2}, "the new owner holding offsets 1 and 2")
            assert await finish_and_commit(owner, admin, 1, 2) == 3


async def test_a_record_the_service_gives_up_on_is_dead_lettered_and_passed(
    stack_up: Settings, namespace: str, producer: AIOKafkaProducer, admin: AIOKafkaAdminClient
) -> None:
    group, tp = f"skeleton-{uuid4().hex[:8]}", first_partition(namespace)
    await produce(producer, namespace, b"poison", b"fine")
    async with running(Holding(stack_up, namespace, producer, group)) as member:
        await wait_until(lambda: member.seen == [0, 1], "both records")
        assert await finish_and_commit(member, admin, 1) == 2
    reader = AIOKafkaConsumer(
        DEAD_LETTER_SPEC.name_in(namespace),
        bootstrap_servers=stack_up.kafka_bootstrap,
        auto_offset_reset="earliest",
    )
    await reader.start()
    try:
        record = await asyncio.wait_for(reader.getone(), 30)
    finally:
        await reader.stop()
    letter: DeadLetter = DEAD_LETTER_SPEC.codec.decode(record.value)
    assert (letter.source_topic, letter.offset, letter.value) == (tp.topic, 0, "poison")
    assert (letter.consumer, letter.error) == ("skeleton-test", "gave up")


async def test_fetching_pauses_at_the_bound_and_resumes_once_work_drains(
    stack_up: Settings, namespace: str, producer: AIOKafkaProducer
) -> None:
    group = f"skeleton-{uuid4().hex[:8]}"
    await produce(producer, namespace, *(b"x" for _ in range(10)))
    service = Holding(
        stack_up,
        namespace,
        producer,
        group,
        max_in_flight_per_topic=4,
        resume_fraction=0.5,
        fetch=Fetch(timeout_s=0.05, max_records=4),
    )
    async with running(service) as member:
        await wait_until(lambda: len(member.seen) == 4, "the first four records")

        async def polls_go_by() -> None:
            polls = member.polls
            await wait_until(lambda: member.polls >= polls + 5, "five more polls")

        await polls_go_by()
        assert member.seen == [0, 1, 2, 3]  # at the bound: nothing more fetched
        member.finish(3)
        await polls_go_by()
        assert len(member.seen) == 4  # 3 held: still above the resume mark (2)
        member.finish(0)
        await wait_until(lambda: len(member.seen) == 8, "four more records after the resume")
        assert member.seen == list(range(8))


async def test_records_of_a_killed_member_are_redelivered_and_none_is_lost(
    stack_up: Settings, namespace: str, producer: AIOKafkaProducer, admin: AIOKafkaAdminClient
) -> None:
    group, tp = f"skeleton-{uuid4().hex[:8]}", first_partition(namespace)
    total = 60
    await produce(producer, namespace, *(b"x" for _ in range(total)))
    doomed = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.streams.consumer_process",
        namespace,
        group,
        "25",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(doomed.communicate(), 60)
    assert doomed.returncode == -9
    finished = {int(line) for line in out.split()}
    assert len(finished) == 25
    resumed_at = await committed(admin, group, tp)
    assert resumed_at < total and all(offset in finished for offset in range(max(resumed_at, 0)))
    async with running(Holding(stack_up, namespace, producer, group)) as heir:
        await wait_until(
            lambda: len(heir.seen) >= total - max(resumed_at, 0), "the records past the commit", timeout_s=60
        )
        assert heir.seen[0] == max(resumed_at, 0)
        assert finished | set(heir.seen) == set(range(total))
        assert set(range(total)) - finished <= set(heir.seen)


async def members(admin: AIOKafkaAdminClient, group: str) -> list[dict[str, Any]]:
    [response] = await admin.describe_consumer_groups([group])
    [described] = response.to_object()["groups"]
    return list(described["members"])


async def test_a_static_member_stopped_as_planned_leaves_its_group_at_once(
    stack_up: Settings, namespace: str, producer: AIOKafkaProducer, admin: AIOKafkaAdminClient
) -> None:
    group = f"skeleton-{uuid4().hex[:8]}"
    await produce(producer, namespace, b"a")
    leaving = Holding(stack_up, namespace, producer, group, instance_id="static-leaving")
    async with running(
        Holding(stack_up, namespace, producer, group, instance_id="static-staying")
    ) as staying:
        await leaving.consumer.start()
        run = asyncio.create_task(leaving.consumer.run())
        await wait_until(lambda: len(leaving.seen) + len(staying.seen) == 1, "the record", timeout_s=60)
        assert len(await members(admin, group)) == 2
        leaving.consumer.stop()
        await run
        await leaving.consumer.close()
        # A static member is not dropped when its consumer stops (only when its session expires); the
        # planned stop took it out itself, so it is gone as soon as close() returns.
        assert [m["client_id"] for m in await members(admin, group)] == [staying.client_id]
