"""Billing state: the Stripe prices of the paid tiers, each owner's customer and subscription, and the
webhook events already handled (a redelivered event does nothing)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from api.billing import SubscriptionChange
from api.db import in_transaction
from api.schemas import BillingSubscription, OwnerUpdate
from api.store.owners import update_owner
from api.store.shared import NotFound, Staging
from models.tiers import Tier

# How long a handled event's id is kept to recognise its redelivery.
EVENT_MEMORY = "30 days"


@dataclass(frozen=True)
class StripePrice:
    product_id: str
    price_id: str


class Billing(Staging):
    async def prices(self) -> dict[Tier, StripePrice]:
        rows = await self.pool.fetch("SELECT tier, product_id, price_id FROM billing_prices")
        return {Tier(row["tier"]): StripePrice(row["product_id"], row["price_id"]) for row in rows}

    async def save_price(self, tier: Tier, price: StripePrice) -> StripePrice:
        """The tier's price: this one, or the one another replica saved first."""
        await self.pool.execute(
            """INSERT INTO billing_prices (tier, product_id, price_id) VALUES ($1, $2, $3)
               ON CONFLICT (tier) DO NOTHING""",
            tier.value,
            price.product_id,
            price.price_id,
        )
        return (await self.prices())[tier]

    async def customer(self, owner_id: UUID) -> str | None:
        customer: str | None = await self.pool.fetchval(
            "SELECT customer_id FROM billing_subscriptions WHERE owner_id = $1", owner_id
        )
        return customer

    async def save_customer(self, owner_id: UUID, customer_id: str) -> str:
        """The owner's customer: this one, or the one a concurrent checkout saved first."""
        await self.pool.execute(
            # No event has told anything of this subscription yet: any event is newer (updated_at).
            """INSERT INTO billing_subscriptions (owner_id, customer_id, status, tier, updated_at)
               SELECT owner_id, $2, 'none', tier, '-infinity' FROM owners WHERE owner_id = $1
               ON CONFLICT (owner_id) DO UPDATE
                   SET customer_id = coalesce(billing_subscriptions.customer_id, excluded.customer_id)""",
            owner_id,
            customer_id,
        )
        saved = await self.customer(owner_id)
        if saved is None:
            raise NotFound(f"owner {owner_id} not found")
        return saved

    async def subscription(self, owner_id: UUID) -> BillingSubscription:
        row = await self.pool.fetchrow(
            """SELECT o.tier, s.status, s.subscription_id FROM owners o
               LEFT JOIN billing_subscriptions s USING (owner_id) WHERE o.owner_id = $1""",
            owner_id,
        )
        if row is None:
            raise NotFound(f"owner {owner_id} not found")
        return BillingSubscription(
            tier=row["tier"], status=row["status"] or "none", subscription_id=row["subscription_id"]
        )

    async def apply(
        self, event_id: str, event_type: str, created: datetime, change: SubscriptionChange
    ) -> bool:
        """Record the event and make its change in one transaction; False: the event was handled before.

        An event older than the last one applied to the subscription (Stripe does not promise order) is
        recorded and changes nothing."""

        async def work(conn: asyncpg.Connection) -> bool:
            fresh = await conn.fetchval(
                """INSERT INTO stripe_events (event_id, type) VALUES ($1, $2)
                   ON CONFLICT DO NOTHING RETURNING 1""",
                event_id,
                event_type,
            )
            if fresh is None:
                return False
            # Stripe redelivers for 3 days at most: older ids can no longer come back.
            await conn.execute(
                f"DELETE FROM stripe_events WHERE received_at < now() - interval '{EVENT_MEMORY}'"
            )
            # The subscription names its owner best; a customer's first subscription event may come before
            # the checkout's (then the customer, saved at checkout, does).
            owner_id = change.owner_id or await conn.fetchval(
                """SELECT owner_id FROM billing_subscriptions
                   WHERE subscription_id = $2 OR (customer_id = $1 AND subscription_id IS NULL)
                   ORDER BY subscription_id = $2 DESC NULLS LAST LIMIT 1""",
                change.customer_id,
                change.subscription_id,
            )
            if (
                owner_id is None
                or await conn.fetchval("SELECT 1 FROM owners WHERE owner_id = $1", owner_id) is None
            ):
                return True
            last = await conn.fetchval(
                "SELECT updated_at FROM billing_subscriptions WHERE owner_id = $1 FOR UPDATE", owner_id
            )
            if last is not None and last > created:
                return True
            tier = change.tier or Tier(
                await conn.fetchval("SELECT tier FROM owners WHERE owner_id = $1", owner_id)
            )
            await conn.execute(
                """INSERT INTO billing_subscriptions AS s
                       (owner_id, customer_id, subscription_id, status, tier, updated_at)
                   VALUES ($1, $2, $3, $4, $5, $6)
                   ON CONFLICT (owner_id) DO UPDATE SET
                       customer_id = coalesce(s.customer_id, excluded.customer_id),
                       subscription_id = coalesce(excluded.subscription_id, s.subscription_id),
                       status = excluded.status, tier = excluded.tier, updated_at = excluded.updated_at""",
                owner_id,
                change.customer_id,
                change.subscription_id,
                change.status,
                tier.value,
                created,
            )
            if change.tier is not None:
                await update_owner(conn, owner_id, OwnerUpdate(tier=change.tier), self.namespace)
            return True

        return await in_transaction(self.pool, work)
