"""The gallery: owners publish agents as character cards, browse and preview others', and copy one into
an agent of their own. api/gallery.py says what a published card leaves out."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import orjson
from fastapi import APIRouter, Query, Response, status

from api.characters import import_character
from api.deps import Caller, Context
from api.errors import Forbidden
from api.gallery import CARD_FORMAT, published_card
from api.schemas import Agent, ErrorBody, GalleryCard, GalleryPage, GalleryPublish

router = APIRouter(
    tags=["gallery"],
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 404: {"model": ErrorBody}},
)


@router.post("/gallery", status_code=status.HTTP_201_CREATED, response_model=GalleryCard)
async def publish(body: GalleryPublish, ctx: Context, principal: Caller) -> GalleryCard:
    """Publish one of your agents (again: replace its card)."""
    agent, stored = await ctx.store.agents.stored_import(body.agent_id, principal.owner_id)
    card = published_card(agent.config, stored)
    return await ctx.store.gallery.publish(
        principal.owner_id, agent.agent_id, agent.name, agent.config.description, card
    )


@router.get("/gallery", response_model=GalleryPage)
async def search(
    ctx: Context,
    principal: Caller,
    q: Annotated[str, Query(max_length=100, description="Words in the name or description")] = "",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> GalleryPage:
    """Published agents, newest first, 20 a page."""
    return await ctx.store.gallery.search(principal.owner_id, q, page)


@router.get("/gallery/{gallery_id}", response_model=GalleryCard)
async def preview(gallery_id: UUID, ctx: Context, principal: Caller) -> GalleryCard:
    return await ctx.store.gallery.get(gallery_id, principal.owner_id)


@router.delete("/gallery/{gallery_id}", status_code=status.HTTP_204_NO_CONTENT)
async def unpublish(gallery_id: UUID, ctx: Context, principal: Caller) -> Response:
    """Its author (or an operator) takes a card out of the gallery; copies already made stay."""
    if principal.scope is not None and await ctx.store.gallery.author(gallery_id) != principal.owner_id:
        raise Forbidden("only the author of a published agent can unpublish it")
    await ctx.store.gallery.unpublish(gallery_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/gallery/{gallery_id}/copies",
    status_code=status.HTTP_201_CREATED,
    response_model=Agent,
    responses={422: {"model": ErrorBody}},
)
async def copy(gallery_id: UUID, ctx: Context, principal: Caller) -> Agent:
    """A new agent of yours from the card, within your tier (403 past its slots or features)."""
    card = (await ctx.store.gallery.get(gallery_id, principal.owner_id)).card
    config, stored = import_character(orjson.dumps(card), CARD_FORMAT)
    return await ctx.store.agents.create(principal.owner_id, config, stored)
