"""Prompts and completions on the inference topics are sealed under the answered user's data key (issue #18):
the worker opens the request, calls the model, seals the result; once the key is destroyed no record opens,
and a request still waiting is dropped without a model call."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio import Redis

from emulator.openai import Behaviour, OpenAICompatibleServer
from models.inference import ChatMessage
from settings import get_settings
from streams.catalog import INFERENCE_LANES, INFERENCE_RESULTS
from streams.sealing import open_payload, seal_payload
from tests.ai.conftest import collect, endpoint, inference_config, results_for, running_worker, send_requests
from tests.ai.factories import inference_request
from tests.stored_records import stored_values
from tests.waiting import wait_until
from vault.user_keys import UserKeyStore, user_keys

pytestmark = pytest.mark.stack


@pytest.fixture
async def server() -> AsyncIterator[OpenAICompatibleServer]:
    async with OpenAICompatibleServer(Behaviour(models=["test-model"])) as running:
        yield running


@pytest.fixture
async def keys() -> AsyncIterator[UserKeyStore]:
    async with user_keys(get_settings()) as store:
        yield store


def new_user() -> str:
    return f"7{uuid.uuid4().int % 10**17:017d}"


async def test_the_prompt_and_the_answer_are_sealed_on_kafka_and_shredded_with_the_key(
    server: OpenAICompatibleServer,
    redis: Redis,
    key_prefix: str,
    namespace: str,
    producer: AIOKafkaProducer,
    keys: UserKeyStore,
) -> None:
    user, secret = new_user(), f"my secret plan {uuid.uuid4().hex[:8]}"
    request = inference_request(text=secret, author_id=user)
    lane = INFERENCE_LANES[request.lane]
    async with running_worker(
        inference_config(key_prefix, endpoint("a", server.base_url)), redis, namespace, keys=keys
    ):
        await send_requests(producer, namespace, [await seal_payload(request, lane.sealing, keys)])
        [result] = await results_for(namespace, [request])

    # The model got the whole prompt; the topics hold neither the words nor whom they answer.
    [call] = server.completions()
    assert call.last_user == f"Bob: {secret}"
    stored = [
        *await stored_values(get_settings().kafka_bootstrap, namespace, lane),
        *await stored_values(get_settings().kafka_bootstrap, namespace, INFERENCE_RESULTS),
    ]
    assert len(stored) == 2
    assert not [raw for raw in stored if secret.encode() in raw or user.encode() in raw]
    opened = await open_payload(result, INFERENCE_RESULTS.sealing, keys)
    assert opened is not None and opened.text == f"echo: Bob: {secret}" and opened.target.author_id == user

    assert await keys.destroy_user_keys(user) == 1
    sealed_request = lane.codec.decode(
        (await stored_values(get_settings().kafka_bootstrap, namespace, lane))[0]
    )
    assert await open_payload(sealed_request, lane.sealing, keys) is None
    assert await open_payload(result, INFERENCE_RESULTS.sealing, keys) is None


async def test_a_request_of_an_erased_user_is_dropped_without_a_model_call(
    server: OpenAICompatibleServer,
    redis: Redis,
    key_prefix: str,
    namespace: str,
    producer: AIOKafkaProducer,
    keys: UserKeyStore,
    admin: AIOKafkaAdminClient,
) -> None:
    erased, other = new_user(), new_user()
    gone = inference_request(text="forget me", author_id=erased)
    # The same deployment: one partition, whose committed offset passes both once both are handled.
    kept = inference_request(author_id=other).model_copy(update={"deployment_id": gone.deployment_id})
    lane = INFERENCE_LANES[gone.lane]
    sealed = [await seal_payload(request, lane.sealing, keys) for request in (gone, kept)]
    await keys.destroy_user_keys(erased)
    group = f"test-inference-{uuid.uuid4().hex[:8]}"
    config = inference_config(key_prefix, endpoint("a", server.base_url))
    async with running_worker(config, redis, namespace, group_id=group, keys=keys):
        await send_requests(producer, namespace, sealed)

        async def both_handled() -> bool:
            offsets = await admin.list_consumer_group_offsets(group)
            return [meta.offset for tp, meta in offsets.items() if tp.topic == lane.name_in(namespace)] == [2]

        await wait_until(both_handled, "both requests handled")
    assert [call.last_user for call in server.completions()] == ["Bob: hello there"]
    results = await collect(namespace, INFERENCE_RESULTS, lambda _key, _value: True)
    assert [result.request_id for _key, result in results] == [kept.request_id]
    await keys.destroy_user_keys(other)


async def test_the_model_gets_a_prompt_without_the_turns_of_an_erased_member(
    server: OpenAICompatibleServer,
    redis: Redis,
    key_prefix: str,
    namespace: str,
    producer: AIOKafkaProducer,
    keys: UserKeyStore,
) -> None:
    answered, erased = new_user(), new_user()
    request = inference_request(text="what did they say?", author_id=answered)
    system, current = request.messages
    theirs = ChatMessage(role="user", name="erin", content="erin: my own words", author_id=erased)
    request = request.model_copy(update={"messages": [system, theirs, current]})
    lane = INFERENCE_LANES[request.lane]
    sealed = await seal_payload(request, lane.sealing, keys)
    assert await keys.destroy_user_keys(erased) == 1
    async with running_worker(
        inference_config(key_prefix, endpoint("a", server.base_url)), redis, namespace, keys=keys
    ):
        await send_requests(producer, namespace, [sealed])
        await results_for(namespace, [request])
    [call] = server.completions()
    assert [m["content"] for m in call.messages] == [system.content, current.content]
    # The model is sent no member's id.
    assert all("author_id" not in m for m in call.messages)
    await keys.destroy_user_keys(answered)
