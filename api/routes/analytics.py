"""An owner's analytics for the console: their agents' activity over time, from ClickHouse (asked of the
sinks process, api/analytics.py), with only their own agents' rows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from api.analytics import analytics_range, new_request_id
from api.deps import Caller, Context
from api.schemas import ErrorBody
from models.analytics import Bucket, OwnerAnalytics, OwnerAnalyticsQuery
from models.common import Snowflake, utc_now

router = APIRouter(
    tags=["analytics"],
    responses={
        400: {"model": ErrorBody},
        401: {"model": ErrorBody},
        404: {"model": ErrorBody},
        503: {"model": ErrorBody},
    },
)


@router.get("/owners/{owner_id}/analytics", response_model=OwnerAnalytics)
async def owner_analytics(
    owner_id: UUID,
    ctx: Context,
    principal: Caller,
    start: Annotated[
        datetime | None, Query(alias="from", description="Default: a day or 30 days before to")
    ] = None,
    end: Annotated[datetime | None, Query(alias="to", description="Default: now")] = None,
    bucket: Bucket = Bucket.day,
    agent_id: Annotated[UUID | None, Query(description="Only this agent of the owner's")] = None,
    guild_id: Annotated[Snowflake | None, Query(description="Only this guild")] = None,
) -> OwnerAnalytics:
    """Messages the owner's agents saw, their replies, AI calls, cost and latency per bucket; decisions by
    reason; totals per agent and per guild. Another owner's id, or agent, is 404."""
    owner = await ctx.store.owners.get(owner_id, principal.scope)
    if agent_id is not None:
        await ctx.store.agents.get(agent_id, owner.owner_id)
        agent_ids = [agent_id]
    else:
        agent_ids = [agent.agent_id for agent in await ctx.store.agents.of_owner(owner.owner_id)]
    deployments = await ctx.store.deployments.of_owner(owner.owner_id, agent_id)
    since, until = analytics_range(start, end, bucket, utc_now())
    query = OwnerAnalyticsQuery(
        request_id=new_request_id(),
        owner_id=owner.owner_id,
        deployments={deployment.deployment_id: deployment.agent_id for deployment in deployments},
        agent_ids=agent_ids,
        guild_id=guild_id,
        start=since,
        end=until,
        bucket=bucket,
    )
    return await ctx.analytics.ask(query)
