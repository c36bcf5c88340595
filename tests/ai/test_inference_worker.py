"""The inference worker end to end over real Kafka, Redis and HTTP: lanes in, results out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from emulator.openai import Behaviour, OpenAICompatibleServer
from inference.quota import MonthlyUsage
from models.operations import DeadLetter
from models.tiers import TIERS, Tier
from streams.catalog import DEAD_LETTERS, INFERENCE_LANES, OWNER_NOTIFICATIONS
from tests.ai.conftest import collect, endpoint, inference_config, results_for, running_worker, send_requests
from tests.ai.factories import inference_request
from tests.data_keys import MemoryDataKeys

pytestmark = pytest.mark.stack


@pytest.fixture
async def server() -> AsyncIterator[OpenAICompatibleServer]:
    async with OpenAICompatibleServer(Behaviour(models=["test-model", "gpt-4o-mini"])) as running:
        yield running


async def test_request_is_answered_on_the_results_topic(
    server: OpenAICompatibleServer, redis: Redis, key_prefix: str, namespace: str, producer: AIOKafkaProducer
) -> None:
    config = inference_config(key_prefix, endpoint("a", server.base_url, ("test-model", "gpt-4o-mini")))
    request = inference_request(Tier.pro, text="hello", model="gpt-4o-mini")
    keys = MemoryDataKeys()
    async with running_worker(config, redis, namespace, keys=keys):
        await send_requests(producer, namespace, [request])
        [result] = await results_for(namespace, [request], keys=keys)
    assert result.text == "echo: Bob: hello"
    assert (result.model, result.fallback, result.cached, result.error) == ("gpt-4o-mini", False, False, None)
    assert result.prompt_tokens > 0 and result.completion_tokens > 0
    assert result.cost_usd > 0  # gpt-4o-mini is in the price table
    assert (result.lane, result.target) == (request.lane, request.target)
    [call] = server.completions()
    assert call.model == "gpt-4o-mini" and call.max_tokens == request.max_tokens
    assert call.messages == [m.model_dump(exclude_none=True) for m in request.messages]
    assert call.extra["store"] is False  # the provider keeps no copy of the conversation
    assert await MonthlyUsage(redis, key_prefix).calls(request.owner_id, datetime.now(UTC)) == 1


async def test_premium_requests_overtake_free_ones_under_load(
    server: OpenAICompatibleServer, redis: Redis, key_prefix: str, namespace: str, producer: AIOKafkaProducer
) -> None:
    server.configure(latency_s=0.05)
    config = inference_config(key_prefix, endpoint("a", server.base_url, concurrency=1))
    free = [inference_request(Tier.free, text=f"free-{i}") for i in range(20)]
    premium = [inference_request(Tier.business, text=f"premium-{i}") for i in range(5)]
    await send_requests(producer, namespace, free)
    await send_requests(producer, namespace, premium)
    async with running_worker(config, redis, namespace):
        results = await results_for(namespace, free + premium)
    assert len(results) == 25 and not any(r.fallback for r in results)
    served = [call.last_user.removeprefix("Bob: ") for call in server.completions()]
    premium_positions = [i for i, text in enumerate(served) if text.startswith("premium")]
    # At most the free requests that had the slot before the premium ones were read go first.
    assert len(premium_positions) == 5 and max(premium_positions) < 8, served
    assert all(call.extra["store"] is False for call in server.completions())
    assert server.peak_in_flight == 1


async def test_cached_prompt_reaches_the_server_once(
    server: OpenAICompatibleServer, redis: Redis, key_prefix: str, namespace: str, producer: AIOKafkaProducer
) -> None:
    config = inference_config(key_prefix, endpoint("a", server.base_url))
    first = inference_request(text="what are the rules?", cacheable=True)
    # Same prompt up to whitespace, another request id.
    second = inference_request(text="what  are the rules? ", cacheable=True)
    uncached = inference_request(text="what are the rules?", cacheable=False)
    async with running_worker(config, redis, namespace):
        await send_requests(producer, namespace, [first])
        [one] = await results_for(namespace, [first])
        await send_requests(producer, namespace, [second, uncached])
        two, three = sorted(await results_for(namespace, [second, uncached]), key=lambda r: r.cached)
    assert len(server.completions()) == 2  # the first and the uncached one
    assert (one.cached, two.cached, three.cached) == (False, False, True)
    assert three.request_id == second.request_id and three.text == one.text and three.cost_usd == 0


async def test_over_quota_the_persona_answers_and_the_owner_hears_once(
    server: OpenAICompatibleServer, redis: Redis, key_prefix: str, namespace: str, producer: AIOKafkaProducer
) -> None:
    owner = uuid4()
    usage = MonthlyUsage(redis, key_prefix)
    limit = TIERS[Tier.free].monthly_ai_calls
    assert limit is not None
    await redis.set(usage.counter_key(owner, f"{datetime.now(UTC):%Y-%m}"), limit)
    requests = [inference_request(Tier.free, owner_id=owner) for _ in range(3)]
    async with running_worker(inference_config(key_prefix, endpoint("a", server.base_url)), redis, namespace):
        await send_requests(producer, namespace, requests)
        results = await results_for(namespace, requests)
    assert [(r.fallback, r.error, r.text) for r in results] == [(True, "ai_quota_exceeded", "")] * 3
    assert server.completions() == []
    assert await usage.calls(owner, datetime.now(UTC)) == limit
    notices = await collect(namespace, OWNER_NOTIFICATIONS, lambda _k, v: v.owner_id == owner)
    assert [(key, n.kind) for key, n in notices] == [(str(owner), "ai_quota_exceeded")]


async def test_without_an_endpoint_for_the_model_the_persona_answers(
    server: OpenAICompatibleServer, redis: Redis, key_prefix: str, namespace: str, producer: AIOKafkaProducer
) -> None:
    owner = uuid4()
    config = inference_config(key_prefix, endpoint("a", server.base_url, models=("gpt-4o-mini",)))
    requests = [inference_request(model="llama-unknown", owner_id=owner) for _ in range(2)]
    async with running_worker(config, redis, namespace):
        await send_requests(producer, namespace, requests)
        results = await results_for(namespace, requests)
    assert [(r.fallback, r.error) for r in results] == [(True, "no_inference_endpoint")] * 2
    assert server.completions() == []
    notices = await collect(namespace, OWNER_NOTIFICATIONS, lambda _k, v: v.owner_id == owner)
    assert [n.kind for _key, n in notices] == ["no_inference_endpoint"]


async def test_empty_pool_answers_everything_with_the_persona(
    redis: Redis, key_prefix: str, namespace: str, producer: AIOKafkaProducer
) -> None:
    request = inference_request()
    async with running_worker(inference_config(key_prefix), redis, namespace):
        await send_requests(producer, namespace, [request])
        [result] = await results_for(namespace, [request])
    assert result.fallback and result.error == "no_inference_endpoint"


async def test_failed_endpoints_fall_back_and_refund_the_call(
    server: OpenAICompatibleServer, redis: Redis, key_prefix: str, namespace: str, producer: AIOKafkaProducer
) -> None:
    server.configure(fail_status=503)
    request, keys = inference_request(), MemoryDataKeys()
    config = inference_config(key_prefix, endpoint("a", server.base_url))
    async with running_worker(config, redis, namespace, keys=keys):
        await send_requests(producer, namespace, [request])
        [result] = await results_for(namespace, [request], keys=keys)
    assert result.fallback and "HTTP 503" in (result.error or "")
    assert len(server.completions()) == 3  # max_attempts, all on the only endpoint
    assert await MonthlyUsage(redis, key_prefix).calls(request.owner_id, datetime.now(UTC)) == 0


async def test_redelivered_request_is_answered_once(
    server: OpenAICompatibleServer, redis: Redis, key_prefix: str, namespace: str, producer: AIOKafkaProducer
) -> None:
    request = inference_request(text="only once")
    config = inference_config(key_prefix, endpoint("a", server.base_url))
    async with running_worker(config, redis, namespace):
        await send_requests(producer, namespace, [request])
        await results_for(namespace, [request])
        await send_requests(producer, namespace, [request])  # the redelivery
        results = await results_for(namespace, [request], count=2)
    assert len(results) == 2 and results[0] == results[1]
    assert len(server.completions()) == 1
    assert await MonthlyUsage(redis, key_prefix).calls(request.owner_id, datetime.now(UTC)) == 1


async def test_malformed_requests_are_dead_lettered_and_the_worker_goes_on(
    server: OpenAICompatibleServer, redis: Redis, key_prefix: str, namespace: str, producer: AIOKafkaProducer
) -> None:
    topic = INFERENCE_LANES[TIERS[Tier.free].lane]
    marker = uuid4().hex
    bad_schema = f'{{"schema_version": 1, "request_id": "{marker}"}}'.encode()
    await producer.send(topic.name_in(namespace), b"\xff not json", key=marker.encode())
    await producer.send(topic.name_in(namespace), bad_schema, key=marker.encode())
    request, keys = inference_request(), MemoryDataKeys()
    config = inference_config(key_prefix, endpoint("a", server.base_url))
    async with running_worker(config, redis, namespace, keys=keys):
        await send_requests(producer, namespace, [request])
        [result] = await results_for(namespace, [request], keys=keys)
        letters = await collect(namespace, DEAD_LETTERS[topic.name], lambda k, _v: k == marker, 2)
    assert result.text.startswith("echo:")
    [(_, garbage), (_, invalid)] = letters
    assert (
        isinstance(garbage, DeadLetter) and garbage.value_encoding == "base64" and "not JSON" in garbage.error
    )
    assert invalid.value == bad_schema.decode() and "event_id" in invalid.error
    assert invalid.source_topic == topic.name_in(namespace) and invalid.consumer == "inference-worker"


async def test_a_worker_joining_mid_stream_loses_and_repeats_nothing(
    server: OpenAICompatibleServer, redis: Redis, key_prefix: str, namespace: str, producer: AIOKafkaProducer
) -> None:
    server.configure(latency_s=0.2)
    config = inference_config(key_prefix, endpoint("a", server.base_url, concurrency=50))
    requests = [inference_request(text=f"r{i}") for i in range(60)]
    group = f"test-inference-{uuid4().hex[:8]}"
    async with running_worker(config, redis, namespace, group):
        await send_requests(producer, namespace, requests[:30])
        async with running_worker(
            config, redis, namespace, group
        ):  # a rebalance while requests are in flight
            await send_requests(producer, namespace, requests[30:])
            results = await results_for(namespace, requests)
    assert {r.request_id for r in results} == {r.request_id for r in requests}
    served = [call.last_user for call in server.completions()]
    assert len(served) == len(set(served)) == 60  # no request reached the model twice
