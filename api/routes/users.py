"""A Discord user's data (operators only): erasure everywhere and the access export, each asynchronous with
a status resource (reading or erasing every store outlasts a request)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Response, status

from api.deps import Context, Operator
from api.schemas import ErrorBody
from api.store import NotFound
from api.store.keys import Principal
from models.erasure import DataExport, Erasure
from ops.erasure import user_digest

router = APIRouter(
    tags=["users"],
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 404: {"model": ErrorBody}},
)

UserId = Annotated[str, Path(pattern=r"^[0-9]{1,20}$", description="A Discord user id (a snowflake).")]


def _actor(principal: Principal) -> str:
    return f"api key {principal.key_id}"


def status_path(user_id: str, erasure_id: UUID) -> str:
    return f"/users/{user_id}/data/erasures/{erasure_id}"


@router.delete("/users/{user_id}/data", status_code=status.HTTP_202_ACCEPTED, response_model=Erasure)
async def erase_user_data(user_id: UserId, ctx: Context, principal: Operator, response: Response) -> Erasure:
    """Erase the user's data from every store. Runs in the background: the answer is the erasure's status
    (its `Location`). Asking again while it runs returns the same erasure (and resumes it if it stopped)."""
    erasure = await ctx.erasures.request(user_id, _actor(principal))
    response.headers["Location"] = status_path(user_id, erasure.erasure_id)
    return erasure


@router.get("/users/{user_id}/data/erasures/{erasure_id}", response_model=Erasure)
async def erasure_status(user_id: UserId, erasure_id: UUID, ctx: Context, _: Operator) -> Erasure:
    """The steps done so far; `status` is `done` once every store is erased."""
    erasure = await ctx.erasures.ledger.get(erasure_id)
    if erasure is None or erasure.user_digest != user_digest(user_id):
        raise NotFound(f"erasure {erasure_id} of user {user_id} not found")
    return erasure


def export_path(user_id: str, export_id: UUID) -> str:
    return f"/users/{user_id}/data/exports/{export_id}"


@router.post("/users/{user_id}/data/exports", status_code=status.HTTP_202_ACCEPTED, response_model=DataExport)
async def export_user_data(
    user_id: UserId, ctx: Context, principal: Operator, response: Response
) -> DataExport:
    """Export everything held about the user (the subject-access request). Runs in the background: the
    answer is the export's status (its `Location`); the status holds the export once `status` is `done`,
    for a day."""
    export = await ctx.exports.request(user_id, _actor(principal))
    response.headers["Location"] = export_path(user_id, export.export_id)
    return export


@router.get("/users/{user_id}/data/exports/{export_id}", response_model=DataExport)
async def export_status(user_id: UserId, export_id: UUID, ctx: Context, _: Operator) -> DataExport:
    """`running`, `failed` (with why; ask again) or `done` with `data`: every store's records of the user."""
    export = await ctx.exports.ledger.get(export_id)
    if export is None or export.user_id != user_id:
        raise NotFound(f"export {export_id} of user {user_id} not found")
    return export
