"""The Big Five's live preview: what each trait value changes in how an agent behaves."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.schemas import ErrorBody, TraitPreview
from api.traits import preview
from models.agent import PersonalityTraits

router = APIRouter(tags=["agents"], responses={422: {"model": ErrorBody}})


@router.get("/traits/preview", response_model=TraitPreview)
async def traits_preview(traits: Annotated[PersonalityTraits, Query()]) -> TraitPreview:
    """Each trait's effects at these values (0-100, neutral 50), from the processors' behaviour functions.
    Public, like /tiers: it reads no one's data."""
    return preview(traits)
