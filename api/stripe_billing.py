"""Stripe over its Python client: the tiers' products and prices, customers, Checkout sessions, and the
webhook signature. Locally the client talks to stripe-mock (`deep stack up` runs it), which answers with
fixtures: the ids it gives are stored as they are."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import stripe

from api.billing import PURCHASABLE, lookup_key
from api.errors import BadField, Unavailable
from api.store.billing import Billing, StripePrice
from models.tiers import TIERS, Tier
from settings import Settings


def verified_event(payload: bytes, signature: str | None, secret: str) -> stripe.Event:
    """The event, if Stripe signed it with the endpoint's secret (and recently); else a 400."""
    if not signature:
        raise BadField("Stripe-Signature", "missing: Stripe signs every webhook request")
    try:
        return stripe.Webhook.construct_event(payload, signature, secret)
    except stripe.SignatureVerificationError:
        raise BadField("Stripe-Signature", "does not match the payload and the webhook secret") from None
    except ValueError:
        raise BadField("body", "is not a Stripe event (JSON)") from None


class StripeBilling:
    def __init__(self, settings: Settings) -> None:
        self._http = stripe.HTTPXClient()
        self._client = stripe.StripeClient(
            settings.stripe_secret_key,
            base_addresses={"api": settings.stripe_api_base},
            http_client=self._http,
            max_network_retries=2,
        )

    async def _call(self, operation: Any) -> Any:
        try:
            return await operation
        except stripe.StripeError as exc:
            # Stripe's message may name the account; the caller learns only that billing is down.
            raise Unavailable(f"billing is unavailable right now (Stripe: {type(exc).__name__})") from None

    async def ensure_prices(self, store: Billing) -> dict[Tier, StripePrice]:
        """Each purchasable tier's product and monthly price, created in Stripe the first time (the
        idempotency keys make a retried creation return the same object)."""
        prices = await store.prices()
        for tier in PURCHASABLE:
            if tier in prices:
                continue
            limits = TIERS[tier]
            assert limits.price_usd_month is not None
            product = await self._call(
                self._client.v1.products.create_async(
                    params={"name": f"The Deep System {tier.value}", "metadata": {"tier": tier.value}},
                    options={"idempotency_key": f"{lookup_key(tier)}-product"},
                )
            )
            price = await self._call(
                self._client.v1.prices.create_async(
                    params={
                        "product": product.id,
                        "currency": "usd",
                        "unit_amount": round(limits.price_usd_month * 100),
                        "recurring": {"interval": "month"},
                        "lookup_key": lookup_key(tier),
                        "metadata": {"tier": tier.value},
                    },
                    options={"idempotency_key": f"{lookup_key(tier)}-price"},
                )
            )
            prices[tier] = await store.save_price(tier, StripePrice(product.id, price.id))
        return prices

    async def customer(self, store: Billing, owner_id: UUID) -> str:
        existing = await store.customer(owner_id)
        if existing is not None:
            return existing
        created = await self._call(
            self._client.v1.customers.create_async(
                params={"metadata": {"owner_id": str(owner_id)}},
                options={"idempotency_key": f"deep-customer-{owner_id}"},
            )
        )
        return await store.save_customer(owner_id, created.id)

    async def checkout(
        self, customer_id: str, price_id: str, owner_id: UUID, tier: Tier, console_url: str
    ) -> tuple[str, str]:
        """A subscription Checkout session: (its URL, its id). The owner and tier travel in the session
        and the subscription, so the webhook events name them."""
        metadata = {"owner_id": str(owner_id), "tier": tier.value}
        session = await self._call(
            self._client.v1.checkout.sessions.create_async(
                params={
                    "mode": "subscription",
                    "customer": customer_id,
                    "line_items": [{"price": price_id, "quantity": 1}],
                    "client_reference_id": str(owner_id),
                    "metadata": metadata,
                    "subscription_data": {"metadata": metadata},
                    "success_url": f"{console_url}#billing?checkout=done",
                    "cancel_url": f"{console_url}#billing?checkout=cancelled",
                }
            )
        )
        return str(session.url), str(session.id)

    async def close(self) -> None:
        await self._http.close_async()
