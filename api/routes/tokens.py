"""Bot tokens: added through the vault, listed and inspected without secrets, revoked."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, status

from api.deps import Caller, Context
from api.schemas import ErrorBody, TokenAdd
from models.tokens import BotTokenState

router = APIRouter(
    tags=["tokens"],
    responses={
        401: {"model": ErrorBody},
        404: {"model": ErrorBody},
        422: {"model": ErrorBody},
        502: {"model": ErrorBody},
    },
)


def _actor(owner_id: UUID) -> str:
    return f"api:owner:{owner_id}"


@router.post("/tokens", status_code=status.HTTP_201_CREATED, response_model=BotTokenState)
async def add_token(body: TokenAdd, ctx: Context, principal: Caller) -> BotTokenState:
    """Validate a bot token with Discord, classify its tier and store it encrypted. The token is never
    returned, logged or shown again; adding a new token of a bot you already have replaces the old one."""
    return await ctx.vault.add_token(principal.owner_id, body.token, actor=_actor(principal.owner_id))


@router.get("/tokens", response_model=list[BotTokenState])
async def list_tokens(ctx: Context, principal: Caller) -> list[BotTokenState]:
    return await ctx.store.tokens.of_owner(principal.owner_id)


@router.get("/tokens/{token_id}", response_model=BotTokenState)
async def get_token(token_id: UUID, ctx: Context, principal: Caller) -> BotTokenState:
    return await ctx.store.tokens.get(token_id, principal.scope)


@router.delete("/tokens/{token_id}", response_model=BotTokenState)
async def revoke_token(token_id: UUID, ctx: Context, principal: Caller) -> BotTokenState:
    """Revoke: never used again; its deployments move to another of your bots, or stop."""
    return await ctx.store.tokens.revoke(token_id, principal.scope, _actor(principal.owner_id))


@router.post("/tokens/{token_id}/check", response_model=BotTokenState)
async def check_token(token_id: UUID, ctx: Context, principal: Caller) -> BotTokenState:
    """Run the health check now (it also runs on a schedule)."""
    await ctx.store.tokens.get(token_id, principal.scope)
    event = await ctx.vault.check_health(token_id, actor=_actor(principal.owner_id))
    if event is not None:
        await ctx.store.tokens.apply_health_event(event)
    return await ctx.store.tokens.get(token_id, principal.scope)
