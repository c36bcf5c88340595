"""The console's sandbox chat: an owner talks to an agent before deploying it (api/sandbox.py)."""

from __future__ import annotations

import time
from uuid import UUID

from fastapi import APIRouter

from api.deps import Caller, Context
from api.sandbox import said, sandbox_turn
from api.schemas import ErrorBody, SandboxAnswer, SandboxMessage, SandboxSource
from inference.pool import Completion
from inference.worker import complete_within_quota, inference_result, rank
from models.common import utc_now
from processors.prompt import PromptFit

router = APIRouter(
    tags=["agents"],
    responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)


@router.post("/agents/{agent_id}/sandbox", response_model=SandboxAnswer)
async def sandbox(agent_id: UUID, body: SandboxMessage, ctx: Context, principal: Caller) -> SandboxAnswer:
    """What the saved agent would do with the message in a channel of its own: its decision (would it
    answer, and why), a command's answer, or its reply, from the model the inference workers use (a call
    counted in the owner's monthly AI calls) or, without one, its offline persona. Nothing is deployed,
    sent to Discord or remembered."""
    agent = await ctx.store.agents.get(agent_id, principal.scope)
    owner = await ctx.store.owners.get(agent.owner_id, principal.scope)
    fit = PromptFit.small if ctx.settings.local_model_serves else PromptFit.full
    turn = sandbox_turn(agent, owner.tier, body, fit, utc_now())
    outputs = turn.outputs
    decision = next((d for d in outputs.decisions if d.deployment_id == turn.deployment_id), None)
    replies = said(outputs.actions)
    source = SandboxSource.platform if replies else SandboxSource.silent
    model = fallback_reason = None
    for request in outputs.requests:
        started = time.monotonic()
        outcome = await complete_within_quota(
            request, ctx.inference, ctx.usage, rank(request.lane, request.priority)
        )
        if isinstance(outcome, Completion):
            result = inference_result(request, started, outcome)
            source = SandboxSource.model
        else:
            result = inference_result(request, started, None, fallback_reason=outcome.reason)
            source, fallback_reason = SandboxSource.persona, outcome.reason
        model = result.model
        replies += said(turn.engine.handle_result(result, turn.key).actions)
    return SandboxAnswer(
        decision=decision, replies=replies, source=source, model=model, fallback_reason=fallback_reason
    )
