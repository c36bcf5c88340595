"""Memory's model client against the OpenAI emulator: importance rated in one prompt per deployment,
reflections citing the memories shown, and the heuristic kept whenever the model is no help."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import uuid4

import openai
import pytest

from emulator.openai import Behaviour, OpenAICompatibleServer
from emulator.openai.server import RecordedCall
from memory.model import MemoryModel
from models.memory import MemoryRecord
from tests.memory.test_model_prompts import stored
from tests.memory.test_scoring import record

pytestmark = pytest.mark.stack

REFLECTION = "Question: What is ahead for user100?\nAnswer: A chemistry exam.\nBecause of: 1, 3, 40\n"


@pytest.fixture
async def server() -> AsyncIterator[OpenAICompatibleServer]:
    async with OpenAICompatibleServer(Behaviour(models=[])) as running:
        yield running


def client_of(server: OpenAICompatibleServer) -> MemoryModel:
    return MemoryModel(openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0))


def with_deployment(memory: MemoryRecord, deployment_id: object) -> MemoryRecord:
    return memory.model_copy(update={"deployment_id": deployment_id})


async def test_unclear_memories_are_rated_in_one_prompt_per_deployment(
    server: OpenAICompatibleServer,
) -> None:
    rated_by_model, plain_talk = uuid4(), uuid4()
    unclear = [record("I have my exam tomorrow", importance=5), record("we are moving", importance=6)]
    clear = [record("lol", importance=2), record("my mum died, I am so sad", importance=9)]
    other = [with_deployment(record("I have a new job", importance=5), plain_talk)]
    records = [with_deployment(r, rated_by_model) for r in [*unclear, *clear]] + other
    server.script("1: 9\n2: 3")
    model = client_of(server)
    try:
        rated = await model.rated(records, {rated_by_model: "rater"})
    finally:
        await model.close()
    assert [r.importance for r in rated] == [9, 3, 2, 9, 5]
    (call,) = server.calls
    assert call.model == "rater" and call.extra["store"] is False
    assert "1. I have my exam tomorrow\n2. we are moving\n" in call.last_user


@pytest.mark.parametrize("behaviour", [{"reply_template": "These all seem fine."}, {"fail_status": 500}])
async def test_the_heuristic_stands_when_the_model_is_no_help(
    server: OpenAICompatibleServer, behaviour: dict[str, object]
) -> None:
    for name, value in behaviour.items():
        setattr(server.behaviour, name, value)
    deployment_id = uuid4()
    records = [with_deployment(record("I have my exam tomorrow", importance=5), deployment_id)]
    model = client_of(server)
    try:
        assert await model.rated(records, {deployment_id: "rater"}) == records
    finally:
        await model.close()
    assert len(server.calls) == 1


async def test_the_embedded_server_names_its_own_model(server: OpenAICompatibleServer) -> None:
    seen: list[str] = []

    def answer(call: RecordedCall) -> str:
        seen.append(call.model)
        return "7"

    server.responder = answer
    deployment_id = uuid4()
    model = MemoryModel(
        openai.AsyncOpenAI(base_url=server.base_url, api_key="none", max_retries=0), served_model="local"
    )
    try:
        (rated,) = await model.rated(
            [with_deployment(record("we are moving", importance=5), deployment_id)], {deployment_id: "gpt-x"}
        )
    finally:
        await model.close()
    assert rated.importance == 7 and seen == ["local"]


async def test_reflections_cite_memories_that_exist(server: OpenAICompatibleServer) -> None:
    memories = stored("I have my chemistry exam next Tuesday", "lol", "I study every night")
    server.script(REFLECTION, "I have no questions.")
    model = client_of(server)
    try:
        (reflection,) = await model.reflections(memories, "thinker")
        assert await model.reflections(memories, "thinker") == []
    finally:
        await model.close()
    assert reflection.text == "What is ahead for user100? A chemistry exam."
    assert reflection.cites == sorted([memories[0].id, memories[2].id])
    assert "3. (2026-12-06) user100: I study every night" in server.calls[0].last_user
