"""Where a token's deployments go when its status changes: a pure plan over plain models, which the
token store loads the inputs for and applies.

A dead (revoked or failed) token's deployments move to another active bot of the same owner that the
owner's tier allows and that serves no deployment in that guild yet (a bot takes part in a guild once);
the healthiest such bot first: fewest failures, then the widest reach, then the oldest. Without one a
deployment stops (status error). A recovered token's stopped deployments come back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from models.deployments import Deployment, DeploymentStatus
from models.operations import OwnerNotice
from models.tiers import TierLimits
from models.tokens import BotTokenState, TokenHealthEvent, TokenStatus

DEAD = frozenset({TokenStatus.revoked, TokenStatus.failed})


@dataclass(frozen=True)
class Candidate:
    """One of the owner's bots and the guilds where it already serves a deployment."""

    token: BotTokenState
    guilds: frozenset[str]


@dataclass(frozen=True)
class Move:
    deployment: Deployment
    to: BotTokenState


@dataclass(frozen=True)
class ReassignmentPlan:
    # Back to active: the token recovered.
    restored: tuple[Deployment, ...] = ()
    # To another of the owner's bots.
    moved: tuple[Move, ...] = ()
    # Status error: no bot could take them.
    stopped: tuple[Deployment, ...] = ()
    # What the owner hears; None when nothing was moved or stopped.
    notice: OwnerNotice | None = None


def concerned(
    event: TokenHealthEvent, token_status: TokenStatus | None, deployments: Iterable[Deployment]
) -> list[Deployment]:
    """The token's deployments that the event still changes, so applying an event twice changes nothing.
    None for an event older than the token's current status (the token changed since, e.g. re-added after
    a reset) or for a status that moves nothing (degraded)."""
    if token_status is not event.status:
        return []
    if event.status is TokenStatus.active:
        return [d for d in deployments if d.status is DeploymentStatus.error]
    if event.status in DEAD:
        return [d for d in deployments if d.status is not DeploymentStatus.error]
    return []


def plan_reassignment(
    event: TokenHealthEvent,
    token_status: TokenStatus | None,
    limits: TierLimits,
    deployments: Sequence[Deployment],
    candidates: Iterable[Candidate],
) -> ReassignmentPlan:
    """The plan for the token's `deployments`, given its current status, the owner's tier and the owner's
    bots (`candidates`, the dead one may be among them)."""
    affected = concerned(event, token_status, deployments)
    if event.status is TokenStatus.active:
        return ReassignmentPlan(restored=tuple(affected))
    if not affected:
        return ReassignmentPlan()
    usable = sorted(
        (
            candidate
            for candidate in candidates
            if candidate.token.status is TokenStatus.active
            and candidate.token.token_id != event.token_id
            and limits.allows_token(candidate.token.tier)
        ),
        key=lambda c: (c.token.failure_count, -c.token.guilds_count, c.token.created_at, c.token.token_id),
    )
    # Guilds each bot serves, including the deployments this plan gives it.
    guilds = {candidate.token.token_id: set(candidate.guilds) for candidate in usable}
    moved: list[Move] = []
    stopped: list[Deployment] = []
    for deployment in affected:
        replacement = next(
            (
                candidate.token
                for candidate in usable
                if candidate.token.owner_id == deployment.owner_id
                and deployment.guild_id not in guilds[candidate.token.token_id]
            ),
            None,
        )
        if replacement is None:
            stopped.append(deployment)
        else:
            moved.append(Move(deployment, replacement))
            guilds[replacement.token_id].add(deployment.guild_id)
    kind = "token_revoked" if event.status is TokenStatus.revoked else "token_failed"
    message = (
        f"bot {event.bot_user_id} is {event.status.value}: {len(moved)} deployment(s) moved to another bot, "
        f"{len(stopped)} stopped"
    )
    return ReassignmentPlan(
        moved=tuple(moved), stopped=tuple(stopped), notice=OwnerNotice(kind=kind, message=message)
    )
