"""Request dependencies: the process's context, the caller (API key or console session) and the
per-caller rate limit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import httpx
from fastapi import Depends, Request, Response
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from api.analytics import AnalyticsClient
from api.errors import Forbidden, RateLimited, Unauthorized
from api.ratelimit import RateLimiter
from api.signin import CSRF_HEADER, SESSION_COOKIE, needs_csrf_header
from api.store import Principal, Store
from api.stripe_billing import StripeBilling
from inference.pool import EndpointPool
from inference.quota import MonthlyUsage
from memory.store import MemoryStore
from ops.erasure import ErasureRunner
from ops.exports import ExportRunner
from settings import Settings
from vault.store import TokenVault


@dataclass(frozen=True)
class ApiContext:
    settings: Settings
    store: Store
    vault: TokenVault
    limiter: RateLimiter
    # The inference workers' monthly AI-call counters.
    usage: MonthlyUsage
    # The agents' long-term memory (Weaviate), connected on first use when it was down at start.
    memories: MemoryStore
    # Outgoing HTTP (Discord's OAuth2 for the console's sign-in).
    http: httpx.AsyncClient
    # The owner console's analytics, answered by the process that holds ClickHouse.
    analytics: AnalyticsClient
    # Billing's Stripe client (stripe-mock locally).
    stripe: StripeBilling
    # The inference workers' model endpoints, for the console's sandbox chat.
    inference: EndpointPool
    # Erasures of users' data, run in this process's background.
    erasures: ErasureRunner
    # Access exports of users' data, run in this process's background.
    exports: ExportRunner


_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer dsk_...`")
_session = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    description=f"A console session (sign in at /auth/discord/login); changes need `{CSRF_HEADER}: 1`",
)
SessionCookie = Annotated[str | None, Depends(_session)]


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


Context = Annotated[ApiContext, Depends(context)]


async def _count(ctx: ApiContext, subject: str, response: Response | None = None) -> None:
    decision = await ctx.limiter.hit(subject)
    if not decision.allowed:
        raise RateLimited(decision.reset_s)
    if response is not None:
        response.headers["X-RateLimit-Limit"] = str(decision.limit)
        response.headers["X-RateLimit-Remaining"] = str(decision.remaining)


async def caller(
    ctx: Context,
    request: Request,
    response: Response,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    session: SessionCookie,
) -> Principal:
    """The API key when one is sent, else the console session cookie."""
    if credentials is not None:
        principal = await ctx.store.keys.principal(credentials.credentials)
        failure = "unknown or revoked API key"
    elif session is not None:
        principal = await ctx.store.sessions.principal(session)
        failure = "the console session expired or was ended: sign in again at /auth/discord/login"
    else:
        principal = None
        failure = "missing API key: send Bearer <key>, or sign in at /auth/discord/login"
    if principal is None:
        # Failed attempts count per client address, so guessing keys is rate limited too.
        await _count(ctx, f"anonymous:{request.client.host if request.client else 'unknown'}")
        raise Unauthorized(failure)
    await _count(ctx, str(principal.key_id), response)
    if principal.session and needs_csrf_header(request.method, request.headers.get(CSRF_HEADER)):
        raise Forbidden(f"a console request that changes something must send the header {CSRF_HEADER}: 1")
    return principal


Caller = Annotated[Principal, Depends(caller)]


async def operator(principal: Caller) -> Principal:
    if not principal.is_admin:
        raise Forbidden("operators only: this API key does not have the admin role")
    return principal


Operator = Annotated[Principal, Depends(operator)]


async def memories(ctx: Context) -> MemoryStore:
    """Long-term memory, reconnected when it was unavailable: configuration is served without it."""
    if not ctx.memories.client.is_connected():
        await ctx.memories.client.connect()
        await ctx.memories.ensure_collection()
    return ctx.memories


Memories = Annotated[MemoryStore, Depends(memories)]
