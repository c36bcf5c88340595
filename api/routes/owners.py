"""Owners and their API keys. Operators (admin role) manage owners; an owner manages their own keys."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Query, Response, status

from api.deps import Caller, Context, Operator
from api.schemas import (
    ApiKeyCreated,
    ContentExports,
    ErrorBody,
    Owner,
    OwnerCreate,
    OwnerCreated,
    OwnerUpdate,
)
from models.operations import OwnerNotification

router = APIRouter(tags=["owners"], responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}})


@router.post("/owners", status_code=status.HTTP_201_CREATED, response_model=OwnerCreated)
async def create_owner(body: OwnerCreate, ctx: Context, _: Operator) -> OwnerCreated:
    """Create an owner and their first API key. The key is in this response only; only its hash is kept."""
    return await ctx.store.owners.create(body)


@router.get("/owners", response_model=list[Owner])
async def list_owners(ctx: Context, _: Operator) -> list[Owner]:
    return await ctx.store.owners.all()


@router.get("/owners/{owner_id}", response_model=Owner)
async def get_owner(owner_id: UUID, ctx: Context, principal: Caller) -> Owner:
    return await ctx.store.owners.get(owner_id, principal.scope)


@router.get("/owners/{owner_id}/notifications", response_model=list[OwnerNotification])
async def owner_notifications(
    owner_id: UUID, ctx: Context, principal: Caller, limit: int = Query(50, ge=1, le=500)
) -> list[OwnerNotification]:
    """What the owner was told, newest first: dead tokens, spent AI quota, reported messages."""
    await ctx.store.owners.get(owner_id, principal.scope)
    return await ctx.store.notifications.newest(owner_id, limit)


@router.get("/notifications", response_model=list[OwnerNotification])
async def all_notifications(
    ctx: Context, _: Operator, limit: int = Query(50, ge=1, le=500)
) -> list[OwnerNotification]:
    """Every owner's notifications, newest first: how operators review reports."""
    return await ctx.store.notifications.newest(None, limit)


@router.patch("/owners/{owner_id}", response_model=Owner)
async def update_owner(owner_id: UUID, body: OwnerUpdate, ctx: Context, _: Operator) -> Owner:
    """Change an owner's tier or role. A tier change re-publishes their deployments' routing records and
    pauses the deployments of agents the new tier does not cover (tools, features, slots: the newest agents
    first); they resume once their agent fits."""
    return await ctx.store.owners.update(owner_id, body)


@router.put("/owners/{owner_id}/content-exports", response_model=Owner)
async def set_content_exports(owner_id: UUID, body: ContentExports, ctx: Context, principal: Caller) -> Owner:
    """Let Parquet exports carry the message content of the owner's guilds, or stop them (the default): a
    guild's words are exported only when every owner with a bot there enabled it. Never used for training."""
    return await ctx.store.owners.set_content_exports(owner_id, body.enabled, principal.scope)


@router.delete("/owners/{owner_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_owner(owner_id: UUID, ctx: Context, principal: Caller) -> Response:
    """Erase an owner and everything they own (an owner may erase themselves)."""
    await ctx.store.owners.get(owner_id, principal.scope)
    await ctx.store.owners.delete(owner_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/owners/{owner_id}/keys", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated)
async def create_key(owner_id: UUID, ctx: Context, principal: Caller) -> ApiKeyCreated:
    """A new API key, shown once."""
    return await ctx.store.keys.create(owner_id, principal.scope)


@router.delete("/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_key(key_id: UUID, ctx: Context, principal: Caller) -> Response:
    await ctx.store.keys.revoke(key_id, principal.scope)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
