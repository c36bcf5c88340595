"""The Weaviate adapter: one multi-tenant collection, one tenant per deployment, vectors brought along.

Tenancy is the privacy boundary: every read and write names the deployment's tenant, so one agent never
sees another's memories. Within a tenant, recall filters to what the asking channel may see: in a guild,
that guild's memories; in a DM, that DM channel's only (DM memories carry the guild DM_GUILD, which no guild
snowflake matches).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import weaviate
from weaviate.classes.config import Configure, DataType, Property, Tokenization, VectorDistances
from weaviate.classes.data import DataObject
from weaviate.classes.query import Filter, MetadataQuery, Sort
from weaviate.classes.tenants import Tenant
from weaviate.client import WeaviateAsyncClient
from weaviate.collections.classes.filters import _Filters
from weaviate.collections.classes.internal import Object
from weaviate.collections.collection.async_ import CollectionAsync
from weaviate.exceptions import WeaviateInsertManyAllFailedError

from models.erasure import names_user
from models.memory import EMBEDDING_DIMENSIONS, Candidate, MemoryKind, MemoryRecord, RecallQuery, StoredMemory
from settings import Settings

COLLECTION = "DeepMemory"
# The most objects one listing returns; owners page through larger memories by author.
LIST_LIMIT = 1000
# The properties recall and listing filter on, matched whole. Every other property has no inverted index:
# each index is files kept open per tenant, and a server holding 1,000 tenants must stay within its
# open-files limit.
FILTERED = ("guild_id", "channel_id", "author_id")
# The guild of a direct message's memories.
DM_GUILD = "dm"
# Tenants a person's search reads at once. One tenant's read is a round trip or more, which leaves the client
# and the server each idle part of the time; reading 16 at once took half as long as one at a time over 1,000
# tenants, and more at once gained nothing.
PERSON_SEARCH_TENANTS = 16
# Ids one delete names at most (Weaviate deletes up to 10,000 objects a request).
DELETE_CHUNK = 1000


class MemoryStoreError(RuntimeError):
    """Weaviate refused a write (a batch with failed objects)."""


def _properties(record: MemoryRecord) -> dict[str, Any]:
    return {
        "guild_id": record.guild_id or DM_GUILD,
        "channel_id": record.channel_id,
        "author_id": record.author_id,
        "author_name": record.author_name,
        "people": record.people,
        "text": record.text,
        "at": record.at.astimezone(UTC),
        "kind": record.kind.value,
        "importance": record.importance,
        "source_event_id": record.source_event_id,
        "cites": [str(c) for c in record.cites],
    }


def _record(deployment_id: UUID, properties: Mapping[str, Any]) -> MemoryRecord:
    return MemoryRecord(
        deployment_id=deployment_id,
        guild_id=None if properties["guild_id"] == DM_GUILD else properties["guild_id"],
        channel_id=properties["channel_id"],
        author_id=properties["author_id"],
        author_name=properties.get("author_name") or "",
        people=properties.get("people") or [],
        text=properties["text"],
        at=properties["at"],
        kind=MemoryKind(properties["kind"]),
        importance=properties["importance"],
        source_event_id=properties["source_event_id"],
        cites=[UUID(str(c)) for c in properties.get("cites") or []],
    )


def _about(record: MemoryRecord, user_id: str) -> bool:
    """The person said it, took part in it, or it names their id."""
    return record.author_id == user_id or user_id in record.people or names_user(record.text, user_id)


def _said_at(properties: Mapping[str, Any]) -> datetime:
    at: datetime = properties["at"]
    return at


def visible_from(guild_id: str | None, channel_id: str) -> _Filters:
    """What a channel may recall: its guild's memories, or for a DM that DM's own."""
    if guild_id is not None:
        return Filter.by_property("guild_id").equal(guild_id)
    dm = Filter.by_property("guild_id").equal(DM_GUILD)
    return dm & Filter.by_property("channel_id").equal(channel_id)


def connect(settings: Settings) -> WeaviateAsyncClient:
    """An unconnected async client for the configured server (call `await client.connect()`)."""
    url = urlsplit(settings.weaviate_http_url)
    secure = url.scheme == "https"
    host = url.hostname or "127.0.0.1"
    return weaviate.use_async_with_custom(
        http_host=host,
        http_port=url.port or (443 if secure else 80),
        http_secure=secure,
        grpc_host=host,
        grpc_port=settings.weaviate_grpc_port,
        grpc_secure=secure,
        # The client's start-up checks include asking pypi.org for its latest version: a running platform
        # reaches only its own servers. The server's health is the stack's and the readiness probes' to check.
        skip_init_checks=True,
    )


class MemoryStore:
    def __init__(self, client: WeaviateAsyncClient, collection: str = COLLECTION) -> None:
        self.client = client
        self.name = collection

    @property
    def _collection(self) -> CollectionAsync:
        return self.client.collections.use(self.name)

    def _tenant(self, deployment_id: UUID) -> CollectionAsync:
        return self._collection.with_tenant(str(deployment_id))

    async def ensure_collection(self) -> None:
        if await self.client.collections.exists(self.name):
            return
        keys = [
            Property(
                name=name, data_type=DataType.TEXT, tokenization=Tokenization.FIELD, index_searchable=False
            )
            for name in FILTERED
        ]
        stored: list[tuple[str, DataType]] = [
            ("kind", DataType.TEXT),
            ("source_event_id", DataType.TEXT),
            ("author_name", DataType.TEXT),
            ("text", DataType.TEXT),
            ("people", DataType.TEXT_ARRAY),
            ("at", DataType.DATE),
            ("importance", DataType.INT),
            ("cites", DataType.UUID_ARRAY),
        ]
        await self.client.collections.create(
            self.name,
            multi_tenancy_config=Configure.multi_tenancy(enabled=True, auto_tenant_creation=False),
            vector_config=Configure.Vectors.self_provided(
                vector_index_config=Configure.VectorIndex.hnsw(distance_metric=VectorDistances.COSINE)
            ),
            properties=[
                *keys,
                *(
                    Property(name=name, data_type=kind, index_filterable=False, index_searchable=False)
                    for name, kind in stored
                ),
            ],
        )

    async def add_tenant(self, deployment_id: UUID) -> None:
        """On deploy. Adding an existing tenant is a no-op, so a redelivered deploy is harmless."""
        await self._collection.tenants.create([Tenant(name=str(deployment_id))])

    async def delete_tenant(self, deployment_id: UUID) -> None:
        """With the deployment: all its memories go."""
        await self._collection.tenants.remove([str(deployment_id)])

    async def write(self, records: Sequence[MemoryRecord], vectors: Sequence[Sequence[float]]) -> None:
        """Upsert by deterministic id (one gRPC batch per tenant): writing an event twice keeps one memory."""
        by_tenant: dict[UUID, list[DataObject[dict[str, Any], None]]] = {}
        for record, vector in zip(records, vectors, strict=True):
            if len(vector) != EMBEDDING_DIMENSIONS:
                raise ValueError(
                    f"vector: {len(vector)} dimensions, the collection holds {EMBEDDING_DIMENSIONS}"
                )
            obj = DataObject(properties=_properties(record), uuid=record.id, vector=list(vector))
            by_tenant.setdefault(record.deployment_id, []).append(obj)
        for deployment_id, objects in by_tenant.items():
            try:
                result = await self._tenant(deployment_id).data.insert_many(objects)
            except WeaviateInsertManyAllFailedError as exc:
                raise MemoryStoreError(f"all {len(objects)} memories refused: {exc.message}") from exc
            if result.has_errors:
                first = next(iter(result.errors.values()))
                raise MemoryStoreError(
                    f"{len(result.errors)} of {len(objects)} memories refused: {first.message}"
                )

    async def candidates(self, query: RecallQuery, vector: Sequence[float], limit: int) -> list[Candidate]:
        response = await self._tenant(query.deployment_id).query.near_vector(
            near_vector=list(vector),
            limit=limit,
            filters=visible_from(query.guild_id, query.channel_id),
            return_metadata=MetadataQuery(distance=True),
        )
        return [
            Candidate(
                id=obj.uuid,
                record=_record(query.deployment_id, obj.properties),
                # Cosine distance is 1 - similarity.
                similarity=max(-1.0, min(1.0, 1.0 - (obj.metadata.distance or 0.0))),
            )
            for obj in response.objects
        ]

    async def listed(self, deployment_id: UUID, *, author_id: str | None = None) -> list[StoredMemory]:
        filters = Filter.by_property("author_id").equal(author_id) if author_id is not None else None
        response = await self._tenant(deployment_id).query.fetch_objects(filters=filters, limit=LIST_LIMIT)
        memories = [self._stored(deployment_id, obj) for obj in response.objects]
        return sorted(memories, key=lambda m: m.record.at)

    @staticmethod
    def _stored(deployment_id: UUID, obj: Object[Any, Any]) -> StoredMemory:
        return StoredMemory(id=obj.uuid, record=_record(deployment_id, obj.properties))

    async def recent(
        self, deployment_id: UUID, guild_id: str | None, channel_id: str, limit: int
    ) -> list[StoredMemory]:
        """The latest memories a channel may see, oldest first."""
        response = await self._tenant(deployment_id).query.fetch_objects(
            filters=visible_from(guild_id, channel_id),
            sort=Sort.by_property("at", ascending=False),
            limit=limit,
        )
        return [self._stored(deployment_id, obj) for obj in reversed(response.objects)]

    async def delete(self, deployment_id: UUID, ids: Sequence[UUID]) -> int:
        if not ids:
            return 0
        result = await self._tenant(deployment_id).data.delete_many(
            where=Filter.by_id().contains_any(list(ids))
        )
        return int(result.successful)

    async def tenants(self) -> list[UUID]:
        """The deployments that have memories here."""
        return [UUID(name) for name in await self._collection.tenants.get()]

    async def delete_older_than(self, deployment_id: UUID, before: datetime) -> int:
        """Delete the tenant's memories said before `before`; returns how many went. `at` has no index (see
        FILTERED), so the sweep reads every memory's time: it runs rarely."""
        aged = [
            obj.uuid
            async for obj in self._tenant(deployment_id).iterator(return_properties=["at"])
            if _said_at(obj.properties) < before
        ]
        deleted = 0
        for start in range(0, len(aged), DELETE_CHUNK):
            deleted += await self.delete(deployment_id, aged[start : start + DELETE_CHUNK])
        return deleted

    async def with_memories(self, deployment_ids: Sequence[UUID]) -> list[UUID]:
        """Those of the deployments that have a tenant (a deployment without memory has none), in order."""
        if not deployment_ids:
            return []
        found = await self._collection.tenants.get_by_names([str(d) for d in deployment_ids])
        return [d for d in deployment_ids if str(d) in found]

    async def about_person(self, user_id: str) -> list[StoredMemory]:
        """Every memory, in every tenant, that the person said, that names their id, or that they took part
        in (the access export and the erasure). `people` and `text` have no index (see FILTERED), so this
        reads every memory: it runs once per request of a person."""
        reading = asyncio.Semaphore(PERSON_SEARCH_TENANTS)

        async def in_tenant(deployment_id: UUID) -> list[StoredMemory]:
            async with reading:
                return [
                    StoredMemory(id=obj.uuid, record=record)
                    async for obj in self._tenant(deployment_id).iterator()
                    if _about(record := _record(deployment_id, obj.properties), user_id)
                ]

        by_tenant = await asyncio.gather(*(in_tenant(tenant) for tenant in await self.tenants()))
        return [memory for found in by_tenant for memory in found]

    async def erase_person(self, user_id: str) -> int:
        """Delete what the person said and what names their id; take them out of the people of the others'
        memories they took part in. Returns how many memories were deleted or rewritten."""
        changed = 0
        for memory in await self.about_person(user_id):
            record, tenant = memory.record, self._tenant(memory.record.deployment_id)
            if record.author_id == user_id or names_user(record.text, user_id):
                changed += await self.delete(record.deployment_id, [memory.id])
            else:
                people = [person for person in record.people if person != user_id]
                await tenant.data.update(uuid=memory.id, properties={"people": people})
                changed += 1
        return changed
