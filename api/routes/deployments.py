"""Deployments: an agent in a guild through a bot, with channel restrictions and a status."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response, status

from api.deps import Caller, Context
from api.schemas import DeploymentUpdate, ErrorBody
from models.deployments import Deployment

router = APIRouter(
    tags=["deployments"],
    responses={
        401: {"model": ErrorBody},
        403: {"model": ErrorBody},
        404: {"model": ErrorBody},
        409: {"model": ErrorBody},
    },
)


@router.get("/deployments", response_model=list[Deployment])
async def list_deployments(ctx: Context, principal: Caller) -> list[Deployment]:
    return await ctx.store.deployments.of_owner(principal.owner_id)


@router.get("/deployments/{deployment_id}", response_model=Deployment)
async def get_deployment(deployment_id: UUID, ctx: Context, principal: Caller) -> Deployment:
    return await ctx.store.deployments.get(deployment_id, principal.scope)


@router.patch("/deployments/{deployment_id}", response_model=Deployment)
async def update_deployment(
    deployment_id: UUID, body: DeploymentUpdate, ctx: Context, principal: Caller
) -> Deployment:
    """Change the bot, channels, DMs or status (active / paused)."""
    return await ctx.store.deployments.update(deployment_id, principal.scope, body)


@router.delete("/deployments/{deployment_id}", status_code=status.HTTP_204_NO_CONTENT)
async def undeploy(deployment_id: UUID, ctx: Context, principal: Caller) -> Response:
    await ctx.store.deployments.undeploy(deployment_id, principal.scope)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
