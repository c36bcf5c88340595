"""The memory store against the real Weaviate server: tenancy, DM privacy, idempotent writes, recall."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import numpy as np
import pytest

from memory.embedding import Embedder
from memory.recall import recall
from memory.store import MemoryStore, MemoryStoreError, connect
from memory.writer import WRITE_CHUNK, embed_and_write
from models.agent import MemoryConfig
from models.memory import EMBEDDING_DIMENSIONS, MemoryKind, MemoryRecord, RecallQuery
from settings import Settings

pytestmark = pytest.mark.stack

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def embedder(stack_up: Settings) -> Embedder:
    return Embedder.from_settings(stack_up)


@pytest.fixture
async def store(stack_up: Settings) -> AsyncIterator[MemoryStore]:
    client = connect(stack_up)
    await client.connect()
    # A collection of its own per test: tests never see each other's memories.
    store = MemoryStore(client, f"TestMemory{uuid4().hex}")
    await store.ensure_collection()
    try:
        yield store
    finally:
        await client.collections.delete(store.name)
        await client.close()


def said(
    deployment: UUID, text: str, *, event: str, guild: str | None = "1", channel: str = "2", author: str = "7"
) -> MemoryRecord:
    return MemoryRecord(
        deployment_id=deployment,
        guild_id=guild,
        channel_id=channel,
        author_id=author,
        author_name="Sam",
        people=[author],
        text=text,
        at=NOW - timedelta(hours=1),
        kind=MemoryKind.observation,
        importance=5,
        source_event_id=event,
    )


async def remember(store: MemoryStore, embedder: Embedder, records: list[MemoryRecord]) -> None:
    await embed_and_write(store, embedder, records)


def test_embeddings_are_unit_vectors_that_place_paraphrases_close(embedder: Embedder) -> None:
    dogs, pets, stocks = embedder.embed(
        ["I love dogs", "Dogs are my favourite animals", "The market crashed"]
    )
    assert dogs.shape == (EMBEDDING_DIMENSIONS,)
    assert np.linalg.norm(dogs) == pytest.approx(1.0, abs=1e-4)
    assert float(dogs @ pets) > float(dogs @ stocks) + 0.3


async def test_recall_finds_the_fact_and_never_crosses_tenants(
    store: MemoryStore, embedder: Embedder
) -> None:
    luna, nova = uuid4(), uuid4()
    await store.add_tenant(luna)
    await store.add_tenant(nova)
    await store.add_tenant(luna)  # a redelivered deploy
    chatter = [said(luna, f"random chatter number {i} about nothing", event=f"c{i}") for i in range(8)]
    fact = said(luna, "My chemistry exam is next Tuesday and I'm nervous", event="fact")
    await remember(store, embedder, [*chatter, fact])
    question = "When is my exam again?"
    config = MemoryConfig(top_k=3)
    asked = RecallQuery(deployment_id=luna, guild_id="1", channel_id="2", text=question, people=["7"], at=NOW)
    recalled = await recall(store, embedder, asked, config)
    assert recalled[0].record.text == fact.text
    assert recalled[0].id == fact.id
    other = asked.model_copy(update={"deployment_id": nova})
    assert await recall(store, embedder, other, config) == []


async def test_dm_memories_stay_in_their_dm(store: MemoryStore, embedder: Embedder) -> None:
    luna = uuid4()
    await store.add_tenant(luna)
    secret = said(luna, "my dog Biscuit is sick and I'm worried", event="dm", guild=None, channel="90")
    public = said(luna, "the weather is rainy today", event="pub")
    await remember(store, embedder, [secret, public])
    config = MemoryConfig()
    in_guild = RecallQuery(deployment_id=luna, guild_id="1", channel_id="2", text="how is my dog?", at=NOW)
    assert [m.record.text for m in await recall(store, embedder, in_guild, config)] == [public.text]
    in_dm = in_guild.model_copy(update={"guild_id": None, "channel_id": "90"})
    assert [m.record.text for m in await recall(store, embedder, in_dm, config)] == [secret.text]
    other_dm = in_guild.model_copy(update={"guild_id": None, "channel_id": "91"})
    assert await recall(store, embedder, other_dm, config) == []


async def test_redelivery_keeps_one_memory_and_deletes_work(store: MemoryStore, embedder: Embedder) -> None:
    luna = uuid4()
    await store.add_tenant(luna)
    records = [said(luna, "I live in Lisbon", event="e1"), said(luna, "I like jazz", event="e2", author="8")]
    await remember(store, embedder, records)
    await remember(store, embedder, records)
    listed = await store.listed(luna)
    assert sorted(m.record.source_event_id for m in listed) == ["e1", "e2"]
    assert listed[0].record == records[0] or listed[0].record == records[1]
    assert [m.record.text for m in await store.listed(luna, author_id="8")] == ["I like jazz"]
    assert await store.delete(luna, [records[0].id]) == 1
    assert [m.record.source_event_id for m in await store.listed(luna)] == ["e2"]
    await store.delete_tenant(luna)
    await store.add_tenant(luna)
    assert await store.listed(luna) == []


async def test_recent_is_the_latest_a_channel_may_see(store: MemoryStore, embedder: Embedder) -> None:
    luna = uuid4()
    await store.add_tenant(luna)
    older = said(luna, "first thing said", event="r1").model_copy(update={"at": NOW - timedelta(hours=5)})
    newer = said(luna, "second thing said", event="r2")
    elsewhere = said(luna, "in another guild", event="r3", guild="5")
    await remember(store, embedder, [newer, elsewhere, older])
    recent = await store.recent(luna, "1", "2", limit=5)
    assert [m.record.text for m in recent] == [older.text, newer.text]
    assert [m.record.text for m in await store.recent(luna, "1", "2", limit=1)] == [newer.text]


async def test_memories_written_chunk_by_chunk_keep_their_own_vectors(
    store: MemoryStore, embedder: Embedder
) -> None:
    luna = uuid4()
    await store.add_tenant(luna)
    # Lengths vary, so sorting them into chunks reorders them, across several chunks.
    texts = [f"note {i}: {' '.join(['remember'] * (i % 7))} item {i * 7919 % 1000}" for i in range(300)]
    assert len(texts) > 2 * WRITE_CHUNK
    records = [said(luna, text, event=f"n{i}") for i, text in enumerate(texts)]
    await embed_and_write(store, embedder, list(reversed(records)))
    tenant = store.client.collections.use(store.name).with_tenant(str(luna))
    stored = await tenant.query.fetch_objects(include_vector=True, limit=len(records) + 1)
    assert len(stored.objects) == len(records)
    vector_of = {obj.uuid: np.array(obj.vector["default"]) for obj in stored.objects}
    alone = embedder.embed(texts)
    for record, expected in zip(records, alone, strict=True):
        assert float(vector_of[record.id] @ expected) > 0.98, record.text


async def test_a_refused_chunk_fails_the_write(store: MemoryStore, embedder: Embedder) -> None:
    luna, undeployed = uuid4(), uuid4()
    await store.add_tenant(luna)
    records = [said(luna, f"message {i}", event=f"m{i}") for i in range(WRITE_CHUNK + 1)]
    records.append(said(undeployed, "a memory of a deployment with no tenant", event="x"))
    with pytest.raises(MemoryStoreError):
        await embed_and_write(store, embedder, records)
