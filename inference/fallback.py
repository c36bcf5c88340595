"""Whether a request is answered by the persona fallback instead of a model, and what its owner hears:
a pure choice over what the worker knows of the request; the worker charges, calls and notifies.

The checks go in order: a model no endpoint serves (nothing is charged for it), the owner's monthly AI
calls used up, then every attempt of the model call failing. A fallback result carries no text: the reply
processor answers with the agent's offline persona.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from inference.quota import month_of
from models.inference import InferenceRequest
from models.operations import NotificationKind, OwnerNotice

NO_ENDPOINT: Final = "no_inference_endpoint"
QUOTA_EXCEEDED: Final = "ai_quota_exceeded"
# OwnerNotice.message's limit: a long model name must not make the notice invalid.
_NOTICE_LENGTH = 200


@dataclass(frozen=True)
class QuotaState:
    """The owner's monthly AI calls as charging this request left them."""

    # The tier's monthly AI calls; None: unlimited.
    limit: int | None
    # Whether this call was counted; False when the month's calls were used up already.
    counted: bool


@dataclass(frozen=True)
class Fallback:
    # The result's error: NO_ENDPOINT, QUOTA_EXCEEDED or why the attempts failed.
    reason: str
    # Told to the owner (once a month per kind); None for a failed call, which the next request retries.
    notice: OwnerNotice | None = None


def fallback_for(
    request: InferenceRequest,
    *,
    endpoint_available: bool,
    quota: QuotaState | None,
    failure: str | None = None,
    at: datetime,
) -> Fallback | None:
    """The fallback answering `request`, or None when the model's completion does (before the call: make
    it). `quota` is None when nothing was charged; `failure` says why every attempt failed."""
    if not endpoint_available:
        return _told(
            NO_ENDPOINT, f"No inference endpoint serves model {request.model}; your agents answer offline."
        )
    if quota is not None and not quota.counted:
        return _told(
            QUOTA_EXCEEDED,
            f"Your {request.tier.value} plan's {quota.limit} AI calls for {month_of(at)} are used up; "
            "your agents answer with their offline persona until next month or an upgrade.",
        )
    if failure is not None:
        return Fallback(failure)
    return None


def _told(kind: NotificationKind, message: str) -> Fallback:
    """A fallback named by its kind, which the owner hears about."""
    return Fallback(kind, OwnerNotice(kind=kind, message=message[:_NOTICE_LENGTH]))
