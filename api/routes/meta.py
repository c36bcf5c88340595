"""Health, the caller's own account, tiers, usage and the operators' view of the outbox."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter

from api.deps import ApiContext, Caller, Context, Operator
from api.schemas import ErrorBody, Health, Me, OutboxStatus, Usage
from models.common import utc_now
from models.tiers import TIERS, Tier, TierLimits

router = APIRouter(tags=["account"], responses={401: {"model": ErrorBody}})


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health()


@router.get("/tiers", response_model=list[TierLimits])
async def tiers() -> list[TierLimits]:
    return list(TIERS.values())


@router.get("/me", response_model=Me)
async def me(ctx: Context, principal: Caller) -> Me:
    owner = await ctx.store.owners.get(principal.owner_id, principal.owner_id)
    return Me(owner=owner, limits=TIERS[owner.tier], usage=await _usage(ctx, owner.owner_id, owner.tier))


@router.get("/usage", response_model=Usage)
async def usage(ctx: Context, principal: Caller) -> Usage:
    """This month's AI calls (counted live by the inference workers) and agents against the tier's limits."""
    return await _usage(ctx, principal.owner_id, principal.tier)


async def _usage(ctx: ApiContext, owner_id: UUID, tier: Tier) -> Usage:
    return await ctx.store.usage.of_owner(owner_id, tier, await ctx.usage.calls(owner_id, utc_now()))


@router.get("/admin/outbox", response_model=OutboxStatus, responses={403: {"model": ErrorBody}})
async def outbox(ctx: Context, _: Operator) -> OutboxStatus:
    """How far the relay is behind: unpublished rows and the oldest one's age."""
    return await ctx.store.outbox.status()
