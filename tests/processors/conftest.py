"""Kafka fixtures of the processor tests: a topic namespace of their own, workers run as subprocesses through
the CLI, and a collector of everything the workers produce."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from models.events import EventEnvelope
from settings import REPO_ROOT, Settings
from streams.catalog import (
    AGENT_DECISIONS,
    AGENT_DEPLOYMENTS,
    DEAD_LETTERS,
    DISCORD_ACTIONS,
    DISCORD_EVENT_MAX_BYTES,
    DISCORD_EVENTS,
    INFERENCE_LANES,
    INFERENCE_RESULTS,
    MODERATION_AUDIT,
    OWNER_NOTIFICATIONS,
    TopicSpec,
)
from streams.codec import encode_key
from streams.sealing import DataKeys, open_payload
from tests.kafka_namespace import temporary_namespace
from vault.user_keys import user_keys

OUTPUTS: tuple[TopicSpec, ...] = (
    DISCORD_ACTIONS,
    AGENT_DECISIONS,
    MODERATION_AUDIT,
    *INFERENCE_LANES.values(),
    OWNER_NOTIFICATIONS,
    DEAD_LETTERS[DISCORD_EVENTS.name],
)
WAIT_S = 45.0


class Worker:
    """`python -m processors.cli` in the test namespace."""

    def __init__(
        self,
        namespace: str,
        app_id: str,
        log_path: Path,
        environment: dict[str, str] | None = None,
        instance_id: str | None = None,
    ) -> None:
        self.namespace, self.app_id, self.log_path = namespace, app_id, log_path
        # Settings of this worker beyond the namespace's (e.g. DEEP_CLOCK_FILE).
        self.environment = environment or {}
        # A static group member: restarted under the same id, it gets its partitions back at once.
        self.instance_id = instance_id
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "DEEP_TOPIC_NAMESPACE": self.namespace,
            "DEEP_LOG_LEVEL": os.environ.get("TEST_WORKER_LOG_LEVEL", "WARNING"),
            # A killed worker's partitions move on after the session timeout: the broker's minimum.
            "BROKER_SESSION_TIMEOUT": "6",
            "BROKER_HEARTBEAT_INTERVAL": "1",
            **self.environment,
        }
        static = ["--instance-id", self.instance_id] if self.instance_id else []
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "processors.cli", "--app-id", self.app_id, *static],
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


def clocked_worker(namespace: str, clock: Path, log_dir: Path) -> Worker:
    """A worker whose timers take the time in `clock` for now; a static group member, so a restart gets its
    partitions back at once."""
    environment = {"DEEP_CLOCK_FILE": str(clock)}
    return Worker(namespace, "deep-processors", log_dir / "worker.log", environment, instance_id="clocked-1")


class Collector:
    """Consumes every output topic from the start and keeps the decoded records by topic, opened (a record
    whose member was erased is kept as it was stored)."""

    def __init__(self, settings: Settings, namespace: str, data_keys: DataKeys) -> None:
        self.specs = {spec.name_in(namespace): spec for spec in OUTPUTS}
        self.data_keys = data_keys
        self.records: dict[str, list[Any]] = defaultdict(list)
        self.keys: dict[str, list[str]] = defaultdict(list)
        self.consumer = AIOKafkaConsumer(
            *self.specs,
            bootstrap_servers=settings.kafka_bootstrap,
            auto_offset_reset="earliest",
            group_id=f"test-collector-{uuid4().hex[:8]}",
        )
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self) -> None:
        await self.consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for record in self.consumer:
            spec = self.specs[record.topic]
            value = spec.codec.decode(record.value)
            self.records[spec.name].append(await open_payload(value, spec.sealing, self.data_keys) or value)
            self.keys[spec.name].append(record.key.decode() if record.key else "")
            self._changed.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.consumer.stop()

    def of(self, spec: TopicSpec) -> list[Any]:
        return list(self.records[spec.name])

    async def wait_for(
        self, spec: TopicSpec, predicate: Callable[[Any], bool], count: int = 1, within: float = WAIT_S
    ) -> list[Any]:
        """The first `count` records of the topic matching `predicate`, waiting for them to arrive."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            found = [record for record in self.records[spec.name] if predicate(record)]
            if len(found) >= count:
                return found[:count]
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"{spec.name}: {len(found)} of {count} expected records after {within}s")
            self._changed.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)


async def wait_for_members(settings: Settings, group: str, topic: str, count: int) -> list[set[int]]:
    """Once the consumer group is stable with `count` members: the partitions of `topic` each member owns."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while asyncio.get_running_loop().time() < deadline:
            [response] = await admin.describe_consumer_groups([group])
            [described] = response.to_object()["groups"]
            if described["state"] == "Stable" and len(described["members"]) == count:
                assignments = [
                    ConsumerProtocolMemberAssignment.decode(member["member_assignment"]).assignment
                    for member in described["members"]
                ]
                return [{p for name, parts in a if name == topic for p in parts} for a in assignments]
            await asyncio.sleep(0.5)
        raise AssertionError(f"group {group} never had {count} stable members")
    finally:
        await admin.close()


class Producer:
    def __init__(self, settings: Settings, namespace: str) -> None:
        self.namespace = namespace
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, linger_ms=2, max_request_size=DISCORD_EVENT_MAX_BYTES
        )

    async def send(self, spec: TopicSpec, key: str, value: Any) -> None:
        raw = value if isinstance(value, bytes) else spec.codec.encode(value)
        await self.producer.send_and_wait(spec.name_in(self.namespace), raw, key=encode_key(key))

    async def event(self, envelope: EventEnvelope) -> None:
        await self.send(DISCORD_EVENTS, envelope.key, envelope)

    async def burst(self, envelopes: list[EventEnvelope]) -> None:
        """Events sent together and then flushed, not one at a time: a worker reads them in one fetch."""
        topic = DISCORD_EVENTS.name_in(self.namespace)
        for envelope in envelopes:
            await self.producer.send(
                topic, DISCORD_EVENTS.codec.encode(envelope), key=encode_key(envelope.key)
            )
        await self.producer.flush()

    async def result(self, key: str, result: Any) -> None:
        await self.send(INFERENCE_RESULTS, key, result)

    async def routing(self, record: Any) -> None:
        await self.send(AGENT_DEPLOYMENTS, record.key, record)


@pytest.fixture(scope="module")
async def namespace(stack_up: Settings) -> AsyncIterator[str]:
    """A topic namespace of the module's own; its topics, the workers' changelogs too, are deleted after."""
    async with temporary_namespace(stack_up.kafka_bootstrap) as namespace:
        yield namespace


@pytest.fixture(scope="module")
async def worker(namespace: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Worker]:
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    worker = Worker(namespace, "deep-processors", log, instance_id="worker-1")
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
async def collector(stack_up: Settings, namespace: str) -> AsyncIterator[Collector]:
    async with user_keys(stack_up) as data_keys:
        collector = Collector(stack_up, namespace, data_keys)
        await collector.start()
        yield collector
        await collector.stop()


@pytest.fixture(scope="module")
async def produce(stack_up: Settings, namespace: str) -> AsyncIterator[Producer]:
    producer = Producer(stack_up, namespace)
    await producer.producer.start()
    yield producer
    await producer.producer.stop()
