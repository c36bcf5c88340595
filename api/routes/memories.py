"""An agent's long-term memory, for its owner: read (paged, filtered) and delete.

An agent's memories are those of its current deployments (one Weaviate tenant each; an undeployed
deployment's memories are gone with it). Listing reads up to memory.store.LIST_LIMIT memories per
deployment (of the one user when `user` is given) and filters and pages them here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response, status

from api.deps import Caller, Context, Memories
from api.schemas import ErrorBody, MemoriesDeleted, MemoryPage
from api.store import NotFound
from memory.store import MemoryStore
from models.common import Snowflake
from models.memory import MemoryKind, StoredMemory

router = APIRouter(
    tags=["memories"],
    responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}, 503: {"model": ErrorBody}},
)

UserFilter = Annotated[Snowflake | None, Query(description="Only memories this Discord user wrote")]


def memory_page(
    memories: Sequence[StoredMemory],
    *,
    kind: MemoryKind | None,
    text: str | None,
    offset: int,
    limit: int,
) -> MemoryPage:
    """The memories matching the kind and (case-insensitive) text, newest first, one page of them."""
    needle = text.casefold() if text else None
    matched = [
        m
        for m in memories
        if (kind is None or m.record.kind is kind) and (needle is None or needle in m.record.text.casefold())
    ]
    matched.sort(key=lambda m: (m.record.at, m.id), reverse=True)
    return MemoryPage(
        memories=matched[offset : offset + limit], total=len(matched), offset=offset, limit=limit
    )


async def _agent_deployments(
    agent_id: UUID, ctx: Context, principal: Caller, store: MemoryStore
) -> list[UUID]:
    """The agent's deployments that have memories; 404 for an agent of another owner."""
    agent = await ctx.store.agents.get(agent_id, principal.scope)
    deployments = await ctx.store.deployments.of_owner(agent.owner_id, agent_id)
    return await store.with_memories([d.deployment_id for d in deployments])


def about_user(memories: Sequence[StoredMemory], user: str) -> list[UUID]:
    """What forgetting a user removes: what they said, the facts about them, and the reflections drawn
    from their words; what others said to them stays (it is the others' memory)."""
    return [
        m.id
        for m in memories
        if m.record.author_id == user or (m.record.kind is MemoryKind.reflection and user in m.record.people)
    ]


@router.get("/agents/{agent_id}/memories", response_model=MemoryPage)
async def list_memories(
    agent_id: UUID,
    ctx: Context,
    principal: Caller,
    store: Memories,
    user: UserFilter = None,
    kind: Annotated[MemoryKind | None, Query(description="observation, reflection or user_fact")] = None,
    q: Annotated[str | None, Query(max_length=200, description="Text the memory contains")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> MemoryPage:
    """What the agent remembers, newest first: in every guild and DM it is deployed to."""
    deployment_ids = await _agent_deployments(agent_id, ctx, principal, store)
    memories = [m for d in deployment_ids for m in await store.listed(d, author_id=user)]
    return memory_page(memories, kind=kind, text=q, offset=offset, limit=limit)


@router.delete("/agents/{agent_id}/memories/{memory_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_memory(
    agent_id: UUID, memory_id: UUID, ctx: Context, principal: Caller, store: Memories
) -> Response:
    """Forget one memory."""
    deleted = 0
    for deployment_id in await _agent_deployments(agent_id, ctx, principal, store):
        deleted += await store.delete(deployment_id, [memory_id])
    if not deleted:
        raise NotFound(f"memory {memory_id} not found")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/agents/{agent_id}/memories", response_model=MemoriesDeleted)
async def delete_user_memories(
    agent_id: UUID,
    ctx: Context,
    principal: Caller,
    store: Memories,
    user: Annotated[Snowflake, Query(description="The Discord user whose memories to forget")],
) -> MemoriesDeleted:
    """Forget one user: what they said to or near the agent, the facts about them, and the reflections
    drawn from their words."""
    deleted = 0
    for deployment_id in await _agent_deployments(agent_id, ctx, principal, store):
        listed = [*await store.listed(deployment_id, author_id=user), *await store.listed(deployment_id)]
        deleted += await store.delete(deployment_id, list(dict.fromkeys(about_user(listed, user))))
    return MemoriesDeleted(deleted=deleted)
