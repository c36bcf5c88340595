"""Agents: configurations an owner creates, edits, imports, exports and deploys."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Query, Request, Response, status

from api.characters import export_character, import_character
from api.deps import Caller, Context
from api.schemas import Agent, ArcStatus, CharacterFormat, Container, DeploymentCreate, ErrorBody
from models.agent import AgentConfig
from models.common import utc_now
from models.deployments import Deployment
from processors.routines import arc_ends_on, beat_on

router = APIRouter(
    tags=["agents"],
    responses={
        401: {"model": ErrorBody},
        403: {"model": ErrorBody},
        404: {"model": ErrorBody},
        422: {"model": ErrorBody},
    },
)

_IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "description": "A Character Card V2/V3 (JSON), a PNG card (tEXt chunk 'chara' or 'ccv3'), an ElizaOS "
        "character or an AgentConfig.",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
_EXPORT_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "description": "The character document, or a PNG card",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}

ConfigBody = Annotated[AgentConfig, Body(description="The agent's configuration")]


@router.post("/agents", status_code=status.HTTP_201_CREATED, response_model=Agent)
async def create_agent(config: ConfigBody, ctx: Context, principal: Caller) -> Agent:
    """Create an agent. Refused (403) past the tier's agent slots or with tools and features it lacks, and
    (422) with a tool the platform does not implement."""
    return await ctx.store.agents.create(principal.owner_id, config)


@router.get("/agents", response_model=list[Agent])
async def list_agents(ctx: Context, principal: Caller) -> list[Agent]:
    return await ctx.store.agents.of_owner(principal.owner_id)


@router.post(
    "/agents/import", status_code=status.HTTP_201_CREATED, response_model=Agent, openapi_extra=_IMPORT_BODY
)
async def import_agent(
    request: Request,
    ctx: Context,
    principal: Caller,
    format: Annotated[
        CharacterFormat | None, Query(description="Detected from the document when unset")
    ] = None,
) -> Agent:
    """Import a character as a new agent; fields without a place are kept for export."""
    config, stored = import_character(await request.body(), format)
    return await ctx.store.agents.create(principal.owner_id, config, stored)


@router.get("/agents/{agent_id}", response_model=Agent)
async def get_agent(agent_id: UUID, ctx: Context, principal: Caller) -> Agent:
    return await ctx.store.agents.get(agent_id, principal.scope)


@router.put("/agents/{agent_id}", response_model=Agent)
async def update_agent(agent_id: UUID, config: ConfigBody, ctx: Context, principal: Caller) -> Agent:
    """Replace the configuration; every deployment of the agent sees it within a second."""
    return await ctx.store.agents.update(agent_id, principal.scope, config)


@router.get("/agents/{agent_id}/arcs", response_model=list[ArcStatus])
async def agent_arcs(
    agent_id: UUID,
    ctx: Context,
    principal: Caller,
    on: Annotated[date | None, Query(description="A local date of the agent; default: today there")] = None,
) -> list[ArcStatus]:
    """The agent's story arcs and the beat each is at. Arcs are edited in the configuration
    (`behavior.story_arcs`, PUT /agents/{id})."""
    agent = await ctx.store.agents.get(agent_id, principal.scope)
    behavior = agent.config.behavior
    day = on or utc_now().astimezone(behavior.schedule.zone).date()
    statuses = []
    for arc in behavior.story_arcs:
        current = None if arc.conditional else beat_on(arc, day)
        statuses.append(
            ArcStatus(
                name=arc.name,
                starts_on=arc.starts_on,
                ends_on=arc_ends_on(arc),
                on=day,
                beat=current[0] if current is not None else None,
                situation=current[1].situation if current is not None else None,
                beats=len(arc.beats),
                conditional=arc.conditional,
            )
        )
    return statuses


@router.delete("/agents/{agent_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_agent(agent_id: UUID, ctx: Context, principal: Caller) -> Response:
    """Delete the agent and undeploy it everywhere."""
    await ctx.store.agents.delete(agent_id, principal.scope)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/agents/{agent_id}/export", response_class=Response, responses=_EXPORT_RESPONSES)
async def export_agent(
    agent_id: UUID,
    ctx: Context,
    principal: Caller,
    format: Annotated[
        CharacterFormat | None, Query(description="Default: the format it was imported from")
    ] = None,
    container: Container = Container.json,
) -> Response:
    """Export as a character card (JSON or PNG), ElizaOS character or AgentConfig."""
    agent, stored = await ctx.store.agents.stored_import(agent_id, principal.scope)
    exported = export_character(agent.config, stored, format, container)
    filename = re.sub(r"[^A-Za-z0-9_-]+", "_", agent.name).strip("_") or "agent"
    return Response(
        exported.body,
        media_type=exported.media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}.{exported.extension}"'},
    )


@router.post("/agents/{agent_id}/deployments", status_code=status.HTTP_201_CREATED, response_model=Deployment)
async def deploy_agent(agent_id: UUID, body: DeploymentCreate, ctx: Context, principal: Caller) -> Deployment:
    """Deploy the agent in a guild through one of the owner's bots."""
    return await ctx.store.deployments.deploy(agent_id, principal.scope, body)


@router.get("/agents/{agent_id}/deployments", response_model=list[Deployment])
async def list_agent_deployments(agent_id: UUID, ctx: Context, principal: Caller) -> list[Deployment]:
    agent = await ctx.store.agents.get(agent_id, principal.scope)
    return await ctx.store.deployments.of_owner(agent.owner_id, agent_id)
