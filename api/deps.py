"""Request dependencies: the process's context, the caller (API key) and the per-key rate limit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import Forbidden, RateLimited, Unauthorized
from api.ratelimit import RateLimiter
from api.store import Principal, Store
from inference.quota import MonthlyUsage
from memory.store import MemoryStore
from ops.erasure import ErasureRunner
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
    # Erasures of users' data, run in this process's background.
    erasures: ErasureRunner


_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer dsk_...`")


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
) -> Principal:
    principal = await ctx.store.keys.principal(credentials.credentials) if credentials is not None else None
    if principal is None:
        # Failed attempts count per client address, so guessing keys is rate limited too.
        await _count(ctx, f"anonymous:{request.client.host if request.client else 'unknown'}")
        raise Unauthorized(
            "unknown or revoked API key" if credentials else "missing API key: send Bearer <key>"
        )
    await _count(ctx, str(principal.key_id), response)
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
