"""The persona-fallback choice: which request the model answers, which the offline persona, and what the
owner hears."""

from __future__ import annotations

from datetime import UTC, datetime

from inference.fallback import NO_ENDPOINT, QUOTA_EXCEEDED, Fallback, QuotaState, fallback_for
from models.operations import OwnerNotice
from models.tiers import TIERS, Tier
from tests.ai.factories import inference_request

AT = datetime(2026, 3, 31, 23, 59, tzinfo=UTC)
FREE_CALLS = TIERS[Tier.free].monthly_ai_calls


def test_a_served_model_within_the_quota_is_called() -> None:
    counted = QuotaState(limit=FREE_CALLS, counted=True)
    assert fallback_for(inference_request(), endpoint_available=True, quota=counted, at=AT) is None


def test_an_unlimited_tier_is_never_over_its_quota() -> None:
    unlimited = QuotaState(limit=None, counted=True)
    request = inference_request(tier=Tier.enterprise)
    assert fallback_for(request, endpoint_available=True, quota=unlimited, at=AT) is None


def test_a_model_no_endpoint_serves_falls_back_and_tells_the_owner() -> None:
    fallback = fallback_for(inference_request(model="gpt-9"), endpoint_available=False, quota=None, at=AT)
    assert fallback == Fallback(
        NO_ENDPOINT,
        OwnerNotice(
            kind="no_inference_endpoint",
            message="No inference endpoint serves model gpt-9; your agents answer offline.",
        ),
    )


def test_a_missing_endpoint_comes_before_the_quota_and_a_failure() -> None:
    spent = QuotaState(limit=FREE_CALLS, counted=False)
    fallback = fallback_for(
        inference_request(), endpoint_available=False, quota=spent, failure="HTTP 503", at=AT
    )
    assert fallback is not None and fallback.reason == NO_ENDPOINT


def test_a_long_model_name_still_makes_a_valid_notice() -> None:
    fallback = fallback_for(inference_request(model="m" * 200), endpoint_available=False, quota=None, at=AT)
    assert fallback is not None and fallback.notice is not None
    assert len(fallback.notice.message) == 200 and fallback.notice.message.startswith("No inference")


def test_a_call_once_the_quota_is_exactly_reached_falls_back_naming_plan_limit_and_month() -> None:
    # The month holds exactly its limit of calls: the charge refused to count this one.
    spent = QuotaState(limit=FREE_CALLS, counted=False)
    fallback = fallback_for(inference_request(), endpoint_available=True, quota=spent, at=AT)
    assert fallback == Fallback(
        QUOTA_EXCEEDED,
        OwnerNotice(
            kind="ai_quota_exceeded",
            message=f"Your free plan's {FREE_CALLS} AI calls for 2026-03 are used up; your agents answer "
            "with their offline persona until next month or an upgrade.",
        ),
    )


def test_a_spent_quota_comes_before_a_failure() -> None:
    spent = QuotaState(limit=10_000, counted=False)
    request = inference_request(tier=Tier.pro)
    fallback = fallback_for(request, endpoint_available=True, quota=spent, failure="timeout", at=AT)
    assert fallback is not None and fallback.reason == QUOTA_EXCEEDED


def test_every_attempt_failing_falls_back_with_the_error_and_no_notice() -> None:
    counted = QuotaState(limit=FREE_CALLS, counted=True)
    failure = "every endpoint failed: HTTP 503"
    request = inference_request()
    fallback = fallback_for(request, endpoint_available=True, quota=counted, failure=failure, at=AT)
    assert fallback == Fallback(failure, None)


def test_nothing_charged_is_not_over_the_quota() -> None:
    assert fallback_for(inference_request(), endpoint_available=True, quota=None, at=AT) is None
