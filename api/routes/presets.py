"""Presets: the premium agents and the mode templates, each deployable with one call."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import Caller, Context
from api.presets import all_presets
from api.schemas import ErrorBody, Preset, PresetDeploy, PresetDeployed
from api.store import NotFound

router = APIRouter(tags=["presets"], responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}})


def _preset(name: str) -> Preset:
    preset = all_presets().get(name.lower())
    if preset is None:
        raise NotFound(f"preset {name!r} not found")
    return preset


@router.get("/presets", response_model=list[Preset])
async def list_presets(_: Caller) -> list[Preset]:
    return list(all_presets().values())


@router.get("/presets/{name}", response_model=Preset)
async def get_preset(name: str, _: Caller) -> Preset:
    return _preset(name)


@router.post(
    "/presets/{name}/deploy",
    status_code=status.HTTP_201_CREATED,
    response_model=PresetDeployed,
    responses={403: {"model": ErrorBody}, 409: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)
async def deploy_preset(name: str, body: PresetDeploy, ctx: Context, principal: Caller) -> PresetDeployed:
    """Copy the preset into your agents and deploy it; edit it afterwards like any agent."""
    return await ctx.store.presets.deploy(principal.owner_id, _preset(name), body)
