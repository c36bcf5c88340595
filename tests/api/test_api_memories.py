"""An agent's long-term memory through the API: its owner reads (paged, filtered) and deletes it; any
other owner gets 404 for all of it."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import httpx
import numpy as np
import pytest

from api.app import create_app
from api.ratelimit import RateLimit
from api.routes.memories import about_user, memory_page
from memory.store import MemoryStore, connect
from models.memory import EMBEDDING_DIMENSIONS, MemoryKind, MemoryRecord, StoredMemory
from settings import Settings
from tests.api.conftest import NewOwner, Recorder, guild_id, started
from tests.api.test_api_agents import AddToken, config
from tests.memory.test_scoring import record
from tests.processors.factories import snowflake

SAM, LEE, BOT = snowflake(), snowflake(), snowflake()


def remembered(
    deployment_id: UUID, text: str, *, author: str = SAM, minutes: int = 0, **fields: Any
) -> MemoryRecord:
    """A memory of the deployment, `minutes` after the others."""
    memory = record(text, author=author, hours_ago=-minutes / 60, event=f"event-{text}", **fields)
    return memory.model_copy(update={"deployment_id": deployment_id})


@pytest.fixture
def closed_ports() -> tuple[int, int]:
    """Two ports nothing listens on (Weaviate's HTTP and gRPC ports must differ)."""
    with socket.socket() as http, socket.socket() as grpc:
        http.bind(("127.0.0.1", 0))
        grpc.bind(("127.0.0.1", 0))
        return http.getsockname()[1], grpc.getsockname()[1]


def test_a_page_is_newest_first_and_filtered() -> None:
    deployment = UUID(int=1)
    memories = [
        StoredMemory(id=r.id, record=r)
        for r in (
            remembered(deployment, "I love pizza", minutes=1),
            remembered(deployment, "Sam likes pizza.", kind=MemoryKind.user_fact, minutes=2),
            remembered(deployment, "rainy today", author=LEE, minutes=3),
        )
    ]
    page = memory_page(memories, kind=None, text=None, offset=0, limit=2)
    assert [m.record.text for m in page.memories] == ["rainy today", "Sam likes pizza."]
    assert page.total == 3
    page = memory_page(memories, kind=None, text="PIZZA", offset=1, limit=5)
    assert [m.record.text for m in page.memories] == ["I love pizza"] and page.total == 2
    page = memory_page(memories, kind=MemoryKind.user_fact, text=None, offset=0, limit=5)
    assert [m.record.text for m in page.memories] == ["Sam likes pizza."]


def test_forgetting_a_user_keeps_what_others_said_to_them() -> None:
    deployment = UUID(int=1)
    records = [
        remembered(deployment, "I love pizza"),
        remembered(deployment, "hey sam", author=LEE, people=[LEE, SAM]),
        remembered(deployment, "Sam loves pizza.", author=BOT, kind=MemoryKind.reflection, people=[SAM]),
    ]
    memories = [StoredMemory(id=r.id, record=r) for r in records]
    assert about_user(memories, SAM) == [records[0].id, records[2].id]


@pytest.mark.stack
async def test_owner_reads_and_deletes_memories_others_get_404(
    client: httpx.AsyncClient, new_owner: NewOwner, add_token: AddToken, base_settings: Settings
) -> None:
    owner, stranger = await new_owner(name="memories"), await new_owner(name="stranger")
    agent = (await client.post("/agents", json=config(), headers=owner)).json()
    token = await add_token(owner)
    deployment = (
        await client.post(
            f"/agents/{agent['agent_id']}/deployments",
            json={"guild_id": guild_id(), "token_id": token["token_id"]},
            headers=owner,
        )
    ).json()
    deployment_id = UUID(deployment["deployment_id"])
    records = [
        remembered(deployment_id, "I have my chemistry exam next Tuesday", minutes=1),
        remembered(deployment_id, "Sam likes pizza.", kind=MemoryKind.user_fact, minutes=2),
        remembered(deployment_id, "rainy today", author=LEE, minutes=3),
        remembered(
            deployment_id, "Sam has an exam.", author=BOT, kind=MemoryKind.reflection, minutes=4, people=[SAM]
        ),
    ]
    url = f"/agents/{agent['agent_id']}/memories"

    async def listed(**params: Any) -> dict[str, Any]:
        response = await client.get(url, params=params, headers=owner)
        assert response.status_code == 200, response.text
        return dict(response.json())

    # Before the memory writer created its tenant, the agent remembers nothing.
    assert (await listed())["total"] == 0
    async with written(base_settings, deployment_id, records) as store:
        page = await listed(limit=2)
        assert [m["record"]["text"] for m in page["memories"]] == ["Sam has an exam.", "rainy today"]
        assert page["total"] == 4
        assert (await listed(user=SAM))["total"] == 2
        assert [m["record"]["text"] for m in (await listed(kind="user_fact"))["memories"]] == [
            "Sam likes pizza."
        ]
        assert (await listed(q="EXAM"))["total"] == 2
        bad = await client.get(url, params={"kind": "dream"}, headers=owner)
        assert bad.status_code == 422 and "kind (query)" in [e["path"] for e in bad.json()["errors"]]

        one = f"{url}/{records[2].id}"
        attempts = [
            client.get(url, headers=stranger),
            client.delete(one, headers=stranger),
            client.delete(url, params={"user": SAM}, headers=stranger),
        ]
        for attempt in attempts:
            assert (await attempt).status_code == 404
        assert (await listed())["total"] == 4

        assert (await client.delete(one, headers=owner)).status_code == 204
        assert (await client.delete(one, headers=owner)).status_code == 404
        forgot = await client.delete(url, params={"user": SAM}, headers=owner)
        assert forgot.json() == {"deleted": 3}
        assert (await listed())["total"] == 0
        assert await store.listed(deployment_id) == []


@asynccontextmanager
async def written(
    settings: Settings, deployment_id: UUID, records: list[MemoryRecord]
) -> AsyncIterator[MemoryStore]:
    """The records in the deployment's tenant of the platform's collection, as the writer stores them;
    the tenant is removed afterwards."""
    client = connect(settings)
    await client.connect()
    store = MemoryStore(client)
    try:
        await store.ensure_collection()
        await store.add_tenant(deployment_id)
        vectors = np.random.default_rng(0).normal(size=(len(records), EMBEDDING_DIMENSIONS))
        await store.write(records, (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).tolist())
        yield store
    finally:
        await store.delete_tenant(deployment_id)
        await client.close()


@pytest.mark.stack
async def test_memory_down_is_503_and_the_rest_of_the_api_works(
    api_settings: Settings,
    pg_dsn: str,
    recorder: Recorder,
    new_owner: NewOwner,
    closed_ports: tuple[int, int],
) -> None:
    # Nothing listens on the port: Weaviate is down from the start.
    down = dataclasses.replace(
        api_settings, weaviate_url=f"http://127.0.0.1:{closed_ports[0]}", weaviate_grpc_port=closed_ports[1]
    )
    owner = await new_owner(name="memory down")
    app = create_app(down, postgres_dsn=pg_dsn, background=False, rate_limit=RateLimit(100_000, 60))
    async for client in started(app, recorder):
        agent = await client.post("/agents", json=config(), headers=owner)
        assert agent.status_code == 201
        response = await client.get(f"/agents/{agent.json()['agent_id']}/memories", headers=owner)
        assert response.status_code == 503
        assert response.json()["detail"] == "long-term memory is unavailable; try again later"
