"""Token reassignment as a pure plan: where a dead token's deployments go, when they stop, when they come
back, and what the owner hears."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any
from uuid import UUID, uuid4

from api.reassignment import Candidate, Move, ReassignmentPlan, plan_reassignment
from models.deployments import Deployment, DeploymentStatus
from models.operations import OwnerNotice
from models.tiers import TIERS, Tier, TokenTier
from models.tokens import BotTokenState, TokenHealthEvent, TokenStatus

OWNER = uuid4()
PRO = TIERS[Tier.pro]
DEAD_BOT = "700"
DEAD_TOKEN = uuid4()
_snowflakes = count(800)
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def bot(
    *guilds: str,
    tier: TokenTier = TokenTier.standard,
    status: TokenStatus = TokenStatus.active,
    failures: int = 0,
    reach: int = 10,
    age_days: int = 0,
    owner_id: UUID = OWNER,
) -> Candidate:
    """One of the owner's bots, serving deployments in `guilds`; older with a larger `age_days`."""
    token = BotTokenState(
        token_id=uuid4(),
        owner_id=owner_id,
        bot_user_id=str(next(_snowflakes)),
        tier=tier,
        status=status,
        failure_count=failures,
        guilds_count=reach,
        created_at=_EPOCH - timedelta(days=age_days),
    )
    return Candidate(token, frozenset(guilds))


def deployment(guild_id: str, status: DeploymentStatus = DeploymentStatus.active) -> Deployment:
    return Deployment(
        deployment_id=uuid4(),
        agent_id=uuid4(),
        owner_id=OWNER,
        guild_id=guild_id,
        bot_id=DEAD_BOT,
        token_id=DEAD_TOKEN,
        status=status,
    )


def event(status: TokenStatus) -> TokenHealthEvent:
    reason: Any = {TokenStatus.active: "recovered", TokenStatus.revoked: "revoked_401"}.get(
        status, "health_check"
    )
    return TokenHealthEvent(token_id=DEAD_TOKEN, bot_user_id=DEAD_BOT, status=status, reason=reason)


def plan(
    status: TokenStatus,
    deployments: list[Deployment],
    candidates: list[Candidate],
    tier: Tier = Tier.pro,
    token_status: TokenStatus | None = None,
) -> ReassignmentPlan:
    current = status if token_status is None else token_status
    return plan_reassignment(event(status), current, TIERS[tier], deployments, candidates)


def targets(result: ReassignmentPlan) -> dict[str, str]:
    """Guild of each moved deployment -> the bot it moved to."""
    return {move.deployment.guild_id: move.to.bot_user_id for move in result.moved}


def test_a_revoked_tokens_deployments_move_to_another_bot_and_the_owner_hears_it() -> None:
    spare = bot()
    guilds = [deployment("1"), deployment("2")]
    result = plan(TokenStatus.revoked, guilds, [spare])
    assert result == ReassignmentPlan(
        moved=(Move(guilds[0], spare.token), Move(guilds[1], spare.token)),
        notice=OwnerNotice(
            kind="token_revoked",
            message=f"bot {DEAD_BOT} is revoked: 2 deployment(s) moved to another bot, 0 stopped",
        ),
    )


def test_the_healthiest_bot_is_chosen_fewest_failures_then_widest_reach_then_oldest() -> None:
    failing = bot(failures=2, reach=90, age_days=9)
    narrow = bot(reach=5, age_days=9)
    young = bot(reach=50)
    old = bot(reach=50, age_days=3)
    assert targets(plan(TokenStatus.failed, [deployment("1")], [failing, narrow, young, old])) == {
        "1": old.token.bot_user_id
    }
    assert targets(plan(TokenStatus.failed, [deployment("1")], [failing, narrow, young])) == {
        "1": young.token.bot_user_id
    }
    assert targets(plan(TokenStatus.failed, [deployment("1")], [failing, narrow])) == {
        "1": narrow.token.bot_user_id
    }


def test_a_bot_of_a_token_tier_the_owners_tier_does_not_allow_is_passed_over() -> None:
    premium = bot(tier=TokenTier.premium, reach=1000)
    standard = bot(tier=TokenTier.standard, reach=1)
    assert targets(plan(TokenStatus.revoked, [deployment("1")], [premium, standard])) == {
        "1": standard.token.bot_user_id
    }
    # The business tier allows premium bots: the wider one is taken.
    assert targets(plan(TokenStatus.revoked, [deployment("1")], [premium, standard], Tier.business)) == {
        "1": premium.token.bot_user_id
    }
    # On the free tier only lite bots serve: with none, the deployment stops.
    stopped = plan(TokenStatus.revoked, [deployment("1")], [premium, standard], Tier.free)
    assert stopped.moved == () and len(stopped.stopped) == 1


def test_bots_that_are_not_active_the_dead_one_and_other_owners_are_never_candidates() -> None:
    # The token's own row, listed as still active (the health check has not marked it yet).
    dead = bot(reach=1000)
    dead = Candidate(dead.token.model_copy(update={"token_id": DEAD_TOKEN}), dead.guilds)
    others = [
        bot(status=TokenStatus.degraded),
        bot(status=TokenStatus.failed),
        bot(status=TokenStatus.revoked),
        bot(owner_id=uuid4()),
        dead,
    ]
    lost = deployment("1")
    result = plan(TokenStatus.failed, [lost], others)
    assert result == ReassignmentPlan(
        stopped=(lost,),
        notice=OwnerNotice(
            kind="token_failed",
            message=f"bot {DEAD_BOT} is failed: 0 deployment(s) moved to another bot, 1 stopped",
        ),
    )


def test_a_bot_already_serving_the_guild_cannot_take_a_deployment_there() -> None:
    busy = bot("1", reach=100)
    free = bot(reach=1)
    result = plan(TokenStatus.revoked, [deployment("1"), deployment("2")], [busy, free])
    assert targets(result) == {"1": free.token.bot_user_id, "2": busy.token.bot_user_id}


def test_a_bot_takes_one_deployment_per_guild_counting_what_the_plan_gives_it() -> None:
    only = bot()
    first, second = deployment("1"), deployment("1")
    result = plan(TokenStatus.revoked, [first, second], [only])
    assert result.moved == (Move(first, only.token),) and result.stopped == (second,)
    assert (
        result.notice is not None
        and "1 deployment(s) moved to another bot, 1 stopped" in result.notice.message
    )


def test_without_any_other_bot_every_deployment_stops() -> None:
    lost = [deployment("1"), deployment("2", DeploymentStatus.paused)]
    result = plan(TokenStatus.revoked, lost, [])
    assert result.moved == () and result.stopped == tuple(lost)


def test_a_recovered_token_brings_back_only_its_stopped_deployments_silently() -> None:
    stopped = deployment("1", DeploymentStatus.error)
    running = [deployment("2"), deployment("3", DeploymentStatus.paused)]
    result = plan(TokenStatus.active, [stopped, *running], [bot()])
    assert result == ReassignmentPlan(restored=(stopped,))


def test_an_event_applied_again_changes_nothing() -> None:
    # After the first application the dead token's deployments are all stopped (or moved away).
    already = [deployment("1", DeploymentStatus.error)]
    assert plan(TokenStatus.revoked, already, []) == ReassignmentPlan()
    assert plan(TokenStatus.active, [deployment("1")], [bot()]) == ReassignmentPlan()


def test_an_event_older_than_the_tokens_status_changes_nothing() -> None:
    # Revoked, then re-added (active again) before the revocation event was applied.
    stale = plan(TokenStatus.revoked, [deployment("1")], [bot()], token_status=TokenStatus.active)
    assert stale == ReassignmentPlan()
    recovered_then_failed = plan(
        TokenStatus.active,
        [deployment("1", DeploymentStatus.error)],
        [bot()],
        token_status=TokenStatus.failed,
    )
    assert recovered_then_failed == ReassignmentPlan()
    gone = plan_reassignment(event(TokenStatus.revoked), None, PRO, [deployment("1")], [bot()])
    assert gone == ReassignmentPlan()


def test_a_degraded_token_keeps_its_deployments() -> None:
    assert plan(TokenStatus.degraded, [deployment("1")], [bot()]) == ReassignmentPlan()
