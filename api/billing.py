"""Billing with Stripe: which tiers are bought through Checkout, and what a webhook event does to an owner's
tier. Pure: events in, tier changes out; api/stripe_billing.py talks to Stripe, api/store/billing.py applies
the change through the tier rules (api/store/owners.update_owner).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from models.tiers import Tier

# Tiers an owner buys in the console; enterprise is priced by contract, free needs no payment.
PURCHASABLE = (Tier.pro, Tier.business)
# Subscription statuses that grant the subscribed tier, and those that end it (back to free). Others
# (past_due, incomplete) leave the tier as it is while Stripe retries the payment.
GRANTING = frozenset({"active", "trialing"})
ENDING = frozenset({"canceled", "unpaid", "incomplete_expired"})
HANDLED_EVENTS = frozenset(
    {"checkout.session.completed", "customer.subscription.updated", "customer.subscription.deleted"}
)


@dataclass(frozen=True)
class SubscriptionChange:
    """What an event says of one owner's subscription. owner_id None: found by the customer id; tier None:
    the tier stays."""

    owner_id: UUID | None
    customer_id: str | None
    subscription_id: str | None
    status: str
    tier: Tier | None


def lookup_key(tier: Tier) -> str:
    """The Stripe price's lookup key, the same on every deployment of the platform."""
    return f"deep_system_{tier.value}_monthly"


def _owner(value: Any) -> UUID | None:
    try:
        return UUID(str(value)) if value else None
    except ValueError:
        return None


def _purchasable(value: Any) -> Tier | None:
    return next((tier for tier in PURCHASABLE if tier.value == value), None)


def change_of(
    event_type: str, subject: Mapping[str, Any], tier_of_price: Mapping[str, Tier]
) -> SubscriptionChange | None:
    """The subscription change an event makes, or None for an event that changes nothing here."""
    if event_type == "checkout.session.completed":
        # The session was created with the owner as client_reference_id and the tier in its metadata.
        bought = _purchasable((subject.get("metadata") or {}).get("tier"))
        owner_id = _owner(subject.get("client_reference_id"))
        if subject.get("mode") != "subscription" or bought is None or owner_id is None:
            return None
        return SubscriptionChange(
            owner_id, subject.get("customer"), subject.get("subscription"), "active", bought
        )
    if event_type not in ("customer.subscription.updated", "customer.subscription.deleted"):
        return None
    status = str(subject.get("status") or "")
    if event_type == "customer.subscription.deleted" or status in ENDING:
        tier: Tier | None = Tier.free
    elif status in GRANTING:
        items = (subject.get("items") or {}).get("data") or []
        price = (items[0].get("price") or {}).get("id") if items else None
        tier = tier_of_price.get(str(price))
        if tier is None:
            # A price this platform did not create: not one of its tiers.
            return None
    else:
        tier = None
    return SubscriptionChange(
        _owner((subject.get("metadata") or {}).get("owner_id")),
        subject.get("customer"),
        subject.get("id"),
        status or "canceled",
        tier,
    )
