"""Billing against stripe-mock: plans with their Stripe prices, Checkout, and Stripe's webhook, verified and
acted on once, changing the owner's tier with its effects."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from uuid import uuid4

import httpx
import pytest

from models.agent import AgentMode
from models.templates import mode_template
from models.tiers import TIERS, Tier
from tests.api.conftest import WEBHOOK_SECRET, NewOwner, guild_id

pytestmark = pytest.mark.stack


def signed(event: dict[str, Any], secret: str = WEBHOOK_SECRET) -> tuple[bytes, dict[str, str]]:
    """The event as Stripe sends it: the JSON body and its Stripe-Signature header."""
    payload = json.dumps(event).encode()
    at = int(time.time())
    signature = hmac.new(secret.encode(), f"{at}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, {"Stripe-Signature": f"t={at},v1={signature}", "Content-Type": "application/json"}


def event(kind: str, subject: dict[str, Any], created: int | None = None) -> dict[str, Any]:
    return {
        "id": f"evt_{uuid4().hex}",
        "object": "event",
        "type": kind,
        "created": created or int(time.time()),
        "data": {"object": subject},
    }


def customer_of(subscription: str) -> str:
    return f"cus_{subscription}"


def checkout_completed(owner_id: str, tier: str, subscription: str) -> dict[str, Any]:
    return event(
        "checkout.session.completed",
        {
            "id": f"cs_test_{uuid4().hex}",
            "object": "checkout.session",
            "mode": "subscription",
            "client_reference_id": owner_id,
            "customer": customer_of(subscription),
            "subscription": subscription,
            "metadata": {"owner_id": owner_id, "tier": tier},
        },
    )


def subscription_event(
    kind: str, subscription: str, status: str, price_id: str, created: int | None = None
) -> dict[str, Any]:
    return event(
        kind,
        {
            "id": subscription,
            "object": "subscription",
            "status": status,
            "customer": customer_of(subscription),
            "items": {"object": "list", "data": [{"price": {"id": price_id}}]},
            "metadata": {},
        },
        created,
    )


async def send(client: httpx.AsyncClient, payload: tuple[bytes, dict[str, str]]) -> httpx.Response:
    body, headers = payload
    return await client.post("/billing/webhook", content=body, headers=headers)


async def me(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    return dict((await client.get("/me", headers=headers)).json())


async def test_plans_carry_the_stripe_prices_created_once(
    client: httpx.AsyncClient, new_owner: NewOwner
) -> None:
    headers = await new_owner()
    first = (await client.get("/billing/plans", headers=headers)).json()
    plans = {plan["tier"]: plan for plan in first}
    assert set(plans) == {tier.value for tier in Tier}
    assert plans["pro"]["purchasable"] and plans["pro"]["price_id"].startswith("price_")
    assert plans["business"]["price_id"] != plans["pro"]["price_id"]
    assert plans["free"]["price_id"] is None and not plans["enterprise"]["purchasable"]
    assert plans["pro"]["price_usd_month"] == TIERS[Tier.pro].price_usd_month
    assert (await client.get("/billing/plans", headers=headers)).json() == first


async def test_checkout_opens_a_stripe_session_for_a_paid_tier(
    client: httpx.AsyncClient, new_owner: NewOwner
) -> None:
    headers = await new_owner()
    session = await client.post("/billing/checkout", json={"tier": "pro"}, headers=headers)
    assert session.status_code == 201, session.text
    assert session.json()["checkout_url"].startswith("https://") and session.json()["session_id"].startswith(
        "cs_"
    )
    for tier, status in (("enterprise", 400), ("free", 400), ("gold", 422)):
        refused = await client.post("/billing/checkout", json={"tier": tier}, headers=headers)
        assert refused.status_code == status and refused.json()["errors"][0]["path"] == "tier", tier
    assert (await client.get("/billing/subscription", headers=headers)).json() == {
        "tier": "free",
        "status": "none",
        "subscription_id": None,
    }


async def test_a_bad_signature_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, new_owner: NewOwner
) -> None:
    headers = await new_owner()
    owner_id = (await me(client, headers))["owner"]["owner_id"]
    completed = checkout_completed(owner_id, "pro", "sub_forged")
    forged = await send(client, signed(completed, secret="whsec_not_ours"))
    assert forged.status_code == 400 and forged.json()["errors"][0]["path"] == "Stripe-Signature"
    unsigned = await client.post("/billing/webhook", json=completed)
    assert unsigned.status_code == 400 and unsigned.json()["errors"][0]["path"] == "Stripe-Signature"
    assert (await me(client, headers))["owner"]["tier"] == "free"


async def test_checkout_completed_upgrades_once_and_a_redelivery_does_nothing(
    client: httpx.AsyncClient, new_owner: NewOwner
) -> None:
    headers = await new_owner()
    owner_id = (await me(client, headers))["owner"]["owner_id"]
    other = await new_owner()
    completed = signed(checkout_completed(owner_id, "pro", "sub_upgrade"))
    assert (await send(client, completed)).status_code == 204
    account = await me(client, headers)
    assert (
        account["owner"]["tier"] == "pro" and account["limits"]["agent_slots"] == TIERS[Tier.pro].agent_slots
    )
    assert (await client.get("/billing/subscription", headers=headers)).json() == {
        "tier": "pro",
        "status": "active",
        "subscription_id": "sub_upgrade",
    }
    # Another owner's billing is untouched and shows nothing of this subscription.
    assert (await client.get("/billing/subscription", headers=other)).json()["subscription_id"] is None

    plans = {plan["tier"]: plan for plan in (await client.get("/billing/plans", headers=headers)).json()}
    cancelled = subscription_event(
        "customer.subscription.deleted", "sub_upgrade", "canceled", plans["pro"]["price_id"]
    )
    assert (await send(client, signed(cancelled))).status_code == 204
    assert (await me(client, headers))["owner"]["tier"] == "free"
    # Stripe delivers the upgrade again (it retries until acknowledged): it was handled, nothing happens.
    assert (await send(client, completed)).status_code == 204
    assert (await me(client, headers))["owner"]["tier"] == "free"


async def test_subscription_updates_follow_the_price_and_a_downgrade_pauses_what_the_tier_lacks(
    client: httpx.AsyncClient, new_owner: NewOwner, add_token: Any
) -> None:
    headers = await new_owner()
    owner_id = (await me(client, headers))["owner"]["owner_id"]
    plans = {plan["tier"]: plan for plan in (await client.get("/billing/plans", headers=headers)).json()}
    assert (await send(client, signed(checkout_completed(owner_id, "pro", "sub_moves")))).status_code == 204

    to_business = subscription_event(
        "customer.subscription.updated", "sub_moves", "active", plans["business"]["price_id"]
    )
    await send(client, signed(to_business))
    assert (await me(client, headers))["owner"]["tier"] == "business"
    # A failing payment leaves the tier while Stripe retries; an unknown price is not a tier of ours.
    await send(
        client,
        signed(
            subscription_event(
                "customer.subscription.updated", "sub_moves", "past_due", plans["business"]["price_id"]
            )
        ),
    )
    await send(
        client,
        signed(subscription_event("customer.subscription.updated", "sub_moves", "active", "price_elsewhere")),
    )
    assert (await me(client, headers))["owner"]["tier"] == "business"
    # An event older than the one applied (Stripe does not promise order) changes nothing.
    stale = subscription_event(
        "customer.subscription.updated", "sub_moves", "active", plans["pro"]["price_id"], created=1
    )
    await send(client, signed(stale))
    assert (await me(client, headers))["owner"]["tier"] == "business"

    # A custom personality needs a paid tier: its deployment is paused when the subscription ends.
    config = mode_template(AgentMode.human_like).model_dump(mode="json")
    config["character"]["backstory"] = "A lighthouse keeper nobody else wrote."
    agent = await client.post("/agents", json={**config, "name": "Custom"}, headers=headers)
    assert agent.status_code == 201, agent.text
    token = await add_token(headers)
    deployed = await client.post(
        f"/agents/{agent.json()['agent_id']}/deployments",
        json={"guild_id": guild_id(), "token_id": token["token_id"]},
        headers=headers,
    )
    assert deployed.status_code == 201, deployed.text
    ended = subscription_event(
        "customer.subscription.updated", "sub_moves", "unpaid", plans["business"]["price_id"]
    )
    await send(client, signed(ended))
    assert (await me(client, headers))["owner"]["tier"] == "free"
    deployment = await client.get(f"/deployments/{deployed.json()['deployment_id']}", headers=headers)
    assert deployment.json()["status"] == "paused"


async def test_events_without_a_change_are_acknowledged(client: httpx.AsyncClient) -> None:
    assert (
        await send(client, signed(event("invoice.paid", {"id": "in_1", "object": "invoice"})))
    ).status_code == 204
    unknown_owner = checkout_completed(str(uuid4()), "pro", "sub_nobody")
    assert (await send(client, signed(unknown_owner))).status_code == 204
