"""Billing: the tiers with their Stripe prices, Checkout for a paid tier, the owner's subscription, and
Stripe's webhook, whose events change the owner's tier through the tier rules (api/billing.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response, status

from api.billing import HANDLED_EVENTS, PURCHASABLE, change_of
from api.deps import Caller, Context
from api.errors import BadField
from api.schemas import BillingPlan, BillingSubscription, CheckoutCreate, CheckoutSession, ErrorBody
from api.stripe_billing import verified_event
from models.tiers import TIERS

router = APIRouter(tags=["billing"], responses={401: {"model": ErrorBody}, 503: {"model": ErrorBody}})


@router.get("/billing/plans", response_model=list[BillingPlan])
async def plans(ctx: Context, _: Caller) -> list[BillingPlan]:
    """Every tier; the paid ones bought here carry their Stripe price."""
    prices = await ctx.stripe.ensure_prices(ctx.store.billing)
    return [
        BillingPlan(
            tier=tier,
            price_usd_month=limits.price_usd_month,
            price_id=prices[tier].price_id if tier in prices else None,
            purchasable=tier in PURCHASABLE,
            limits=limits,
        )
        for tier, limits in TIERS.items()
    ]


@router.post(
    "/billing/checkout",
    status_code=status.HTTP_201_CREATED,
    response_model=CheckoutSession,
    responses={400: {"model": ErrorBody}, 403: {"model": ErrorBody}},
)
async def checkout(body: CheckoutCreate, ctx: Context, principal: Caller) -> CheckoutSession:
    """A Stripe Checkout session for a paid tier: open checkout_url; the tier changes when Stripe's
    webhook says the payment went through."""
    if body.tier not in PURCHASABLE:
        raise BadField("tier", f"{body.tier.value} is not bought here (paid tiers: {', '.join(PURCHASABLE)})")
    if body.tier is principal.tier:
        raise BadField("tier", f"you are on {body.tier.value} already")
    prices = await ctx.stripe.ensure_prices(ctx.store.billing)
    customer = await ctx.stripe.customer(ctx.store.billing, principal.owner_id)
    url, session_id = await ctx.stripe.checkout(
        customer, prices[body.tier].price_id, principal.owner_id, body.tier, ctx.settings.console_url
    )
    return CheckoutSession(checkout_url=url, session_id=session_id)


@router.get("/billing/subscription", response_model=BillingSubscription)
async def subscription(ctx: Context, principal: Caller) -> BillingSubscription:
    return await ctx.store.billing.subscription(principal.owner_id)


@router.post(
    "/billing/webhook",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={400: {"model": ErrorBody}},
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
    },
)
async def webhook(
    request: Request,
    ctx: Context,
    stripe_signature: Annotated[str | None, Header(alias="Stripe-Signature")] = None,
) -> Response:
    """Stripe's events, verified with the webhook secret. A redelivered event is acknowledged and does
    nothing; events this platform does not act on are acknowledged too."""
    event = verified_event(await request.body(), stripe_signature, ctx.settings.stripe_webhook_secret)
    if event.type in HANDLED_EVENTS:
        prices = await ctx.store.billing.prices()
        tier_of_price = {price.price_id: tier for tier, price in prices.items()}
        change = change_of(event.type, event.data.object.to_dict(), tier_of_price)
        if change is not None:
            created = datetime.fromtimestamp(event.created, UTC)
            await ctx.store.billing.apply(event.id, event.type, created, change)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
