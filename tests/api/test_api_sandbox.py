"""The console's sandbox chat over the API: the saved agent's decision and reply, from the local model
server the inference workers use, or its offline persona where no model endpoint is configured."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.ratelimit import RateLimit
from models.agent import AgentMode
from models.templates import mode_template
from settings import Settings
from tests.api.conftest import NewOwner, Recorder, started

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
async def offline(
    api_settings: Settings, pg_dsn: str, recorder: Recorder
) -> AsyncIterator[httpx.AsyncClient]:
    """The API where no model endpoint is configured (and the embedded model is off)."""
    settings = dataclasses.replace(
        api_settings, local_model=False, openai_base_url="", openai_api_key="", inference_endpoints=""
    )
    app = create_app(settings, postgres_dsn=pg_dsn, background=False, rate_limit=RateLimit(100_000, 60))
    async for client in started(app, recorder):
        yield client


async def new_agent(
    client: httpx.AsyncClient, headers: dict[str, str], mode: AgentMode, *, unprompted: bool = True
) -> str:
    """`unprompted=False`: the agent never speaks unaddressed (no random or bored replies), so what it does
    with a message that names no trigger does not depend on the dice of the exchange's event ids."""
    template = mode_template(mode)
    if not unprompted:
        triggers = template.behavior.response_triggers
        for trigger in (triggers.random, triggers.bored):
            trigger.enabled = False
    config = {**template.model_dump(mode="json"), "name": "Nova"}
    created = await client.post("/agents", json=config, headers=headers)
    assert created.status_code == 201, created.text
    return str(created.json()["agent_id"])


async def talk(
    client: httpx.AsyncClient, agent_id: str, headers: dict[str, str], **body: Any
) -> httpx.Response:
    return await client.post(f"/agents/{agent_id}/sandbox", json=body, headers=headers)


async def test_the_agent_answers_from_the_model_with_its_decision(
    client: httpx.AsyncClient, new_owner: NewOwner, api_settings: Settings
) -> None:
    assert api_settings.local_model_serves, "these tests expect the stack's embedded model server"
    headers = await new_owner()
    agent_id = await new_agent(client, headers, AgentMode.human_like)
    history = [{"author": "owner", "content": "hello Nova"}, {"author": "agent", "content": "Hi there!"}]
    answer = await talk(client, agent_id, headers, content="what do you like to do?", history=history)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["decision"]["respond"] and body["decision"]["reason"] == "mentioned"
    assert body["source"] == "model" and body["fallback_reason"] is None
    assert body["replies"] and all(reply.strip() for reply in body["replies"])
    assert "X-RateLimit-Remaining" in answer.headers
    # The call counts in the owner's monthly AI calls, as a deployed agent's would.
    assert (await client.get("/usage", headers=headers)).json()["ai_calls"] == 1


async def test_without_a_model_endpoint_the_persona_answers_and_says_why(
    client: httpx.AsyncClient, offline: httpx.AsyncClient, new_owner: NewOwner
) -> None:
    headers = await new_owner()
    agent_id = await new_agent(client, headers, AgentMode.human_like, unprompted=False)
    body = (await talk(offline, agent_id, headers, content="hello, who are you?")).json()
    assert body["decision"]["reason"] == "mentioned"
    assert body["source"] == "persona" and body["fallback_reason"] == "no_inference_endpoint"
    assert body["replies"]
    quiet = (await talk(offline, agent_id, headers, content="nice weather", mention=False)).json()
    assert quiet["decision"]["reason"] == "no_trigger" and quiet["source"] == "silent"
    assert quiet["replies"] == []


async def test_an_agent_without_ai_answers_its_commands(
    client: httpx.AsyncClient, new_owner: NewOwner
) -> None:
    headers = await new_owner()
    agent_id = await new_agent(client, headers, AgentMode.bare)
    command = (await talk(client, agent_id, headers, content="!queue", mention=False)).json()
    assert command == {
        "decision": None,
        "replies": ["The queue is empty."],
        "source": "platform",
        "model": None,
        "fallback_reason": None,
    }
    silent = (await talk(client, agent_id, headers, content="hello?")).json()
    assert silent["decision"]["reason"] == "ai_disabled" and silent["source"] == "silent"


async def test_another_owners_agent_is_not_found_and_bad_input_names_the_field(
    client: httpx.AsyncClient, new_owner: NewOwner
) -> None:
    owner_a, owner_b = await new_owner(name="a"), await new_owner(name="b")
    agent_id = await new_agent(client, owner_a, AgentMode.human_like)
    assert (await talk(client, agent_id, owner_b, content="hi")).status_code == 404
    assert (await talk(client, agent_id, {}, content="hi")).status_code == 401
    empty = await talk(client, agent_id, owner_a, content="")
    assert empty.status_code == 422 and empty.json()["errors"][0]["path"] == "content"
    long_history = [{"author": "owner", "content": "hi"}] * 21
    too_long = await talk(client, agent_id, owner_a, content="hi", history=long_history)
    assert too_long.status_code == 422 and too_long.json()["errors"][0]["path"] == "history"
    stranger = await talk(
        client, agent_id, owner_a, content="hi", history=[{"author": "bot", "content": "x"}]
    )
    assert stranger.status_code == 422 and stranger.json()["errors"][0]["path"] == "history.0.author"
