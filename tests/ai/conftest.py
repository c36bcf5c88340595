"""Fixtures of the AI-path tests: a topic namespace per test on the real broker, Redis key prefixes per
test, OpenAI-compatible servers over real HTTP, and a running inference worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from redis.asyncio import Redis

from inference.config import EndpointConfig, InferenceConfig
from inference.pool import EndpointPool
from inference.worker import InferenceWorker
from models.events import partition_key
from models.inference import InferenceRequest
from settings import get_settings
from streams.catalog import DEAD_LETTERS, INFERENCE_LANES, INFERENCE_RESULTS, OWNER_NOTIFICATIONS, TopicSpec
from streams.codec import decode_key
from streams.sealing import DataKeys, open_payload
from tests.data_keys import MemoryDataKeys
from tests.kafka_namespace import temporary_namespace

AI_TOPICS = (
    *INFERENCE_LANES.values(),
    INFERENCE_RESULTS,
    OWNER_NOTIFICATIONS,
    *(DEAD_LETTERS[spec.name] for spec in INFERENCE_LANES.values()),
)


@pytest.fixture
async def namespace() -> AsyncIterator[str]:
    """A topic namespace of the test's own: a fresh worker group reads the lanes from the start."""
    async with temporary_namespace(get_settings().kafka_bootstrap, AI_TOPICS) as ns:
        yield ns


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(get_settings().redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def key_prefix(redis: Redis) -> AsyncIterator[str]:
    prefix = f"test:ai:{uuid4().hex[:8]}:"
    yield prefix
    keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
    if keys:
        await redis.delete(*keys)


@pytest.fixture
async def producer() -> AsyncIterator[AIOKafkaProducer]:
    client = AIOKafkaProducer(bootstrap_servers=get_settings().kafka_bootstrap, linger_ms=1)
    await client.start()
    yield client
    await client.stop()


def endpoint(
    name: str, base_url: str, models: tuple[str, ...] = ("test-model",), concurrency: int = 8
) -> EndpointConfig:
    return EndpointConfig(name, base_url, models, concurrency)


def inference_config(key_prefix: str, *endpoints: EndpointConfig, **overrides: Any) -> InferenceConfig:
    fast = {
        "request_timeout_s": 2.0,
        "backoff_base_s": 0.01,
        "queue_timeout_s": 10.0,
        "key_prefix": key_prefix,
    }
    return replace(InferenceConfig(endpoints=tuple(endpoints)), **{**fast, **overrides})


@asynccontextmanager
async def running_worker(
    config: InferenceConfig,
    redis: Redis,
    namespace: str,
    group_id: str | None = None,
    keys: DataKeys | None = None,
) -> AsyncIterator[InferenceWorker]:
    """A worker with data keys of its own in memory unless given the vault's (`keys`)."""
    pool = EndpointPool(list(config.endpoints), config)
    group = group_id or f"test-inference-{uuid4().hex[:8]}"
    worker = InferenceWorker(
        config,
        pool,
        redis,
        get_settings().kafka_bootstrap,
        namespace,
        group_id=group,
        keys=keys or MemoryDataKeys(),
    )
    await worker.start()
    run = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        await worker.stop(grace_s=5)
        await run


async def send_requests(
    producer: AIOKafkaProducer, namespace: str, requests: Iterable[InferenceRequest]
) -> None:
    for request in requests:
        spec = INFERENCE_LANES[request.lane]
        await producer.send(
            spec.name_in(namespace), spec.codec.encode(request), key=str(request.deployment_id).encode()
        )
    await producer.flush()


async def collect(
    namespace: str,
    spec: TopicSpec,
    wanted: Callable[[str | None, Any], bool],
    count: int | None = None,
    timeout_s: float = 20.0,
) -> list[tuple[str | None, Any]]:
    """(key, value) of the records of `spec` that `wanted` accepts, in partition order: the first `count` of
    them (fewer if the timeout passes first), or with count None all that are in the topic now."""
    topic = spec.name_in(namespace)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=get_settings().kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    found: list[tuple[str | None, Any]] = []
    try:
        partitions = [TopicPartition(topic, p) for p in range(spec.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            if count is None and await _read_up_to(consumer, end):
                break
            if count is not None and len(found) >= count:
                break
            for records in (await consumer.getmany(timeout_ms=100)).values():
                for record in records:
                    key, value = decode_key(record.key), spec.codec.decode(record.value)
                    if wanted(key, value):
                        found.append((key, value))
    finally:
        await consumer.stop()
    return found[:count]


async def _read_up_to(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> bool:
    for tp, offset in end.items():
        if await consumer.position(tp) < offset:
            return False
    return True


async def results_for(
    namespace: str, requests: list[InferenceRequest], count: int | None = None, keys: DataKeys | None = None
) -> list[Any]:
    """Results of `requests` (count of them, default one each), checking each is keyed by its guild; opened
    with `keys`, the worker's, when given (every result is sealed: under its bot's key when it answers no
    one)."""
    ids = {r.request_id for r in requests}
    found = await collect(
        namespace, INFERENCE_RESULTS, lambda _k, v: v.request_id in ids, count or len(requests)
    )
    for key, result in found:
        assert key == partition_key(result.target.guild_id, result.target.bot_id)
    if keys is None:
        return [result for _key, result in found]
    return [await open_payload(result, INFERENCE_RESULTS.sealing, keys) for _key, result in found]
