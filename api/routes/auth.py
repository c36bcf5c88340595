"""Signing in to the owner console with Discord (OAuth2 with PKCE) and out again; the signed-in person's
servers for the deploy picker. api/signin.py describes the flow."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Cookie, Query, Request, Response, status
from fastapi.responses import RedirectResponse

from api.deps import Caller, Context, SessionCookie
from api.discord_oauth import CodeRejected, exchange_code, signed_in_user
from api.errors import BadField, Forbidden
from api.schemas import ConsoleGuild, ErrorBody
from api.signin import (
    CSRF_HEADER,
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    SIGN_IN_PATH,
    SIGN_IN_TTL,
    authorize_url,
    can_manage,
    local_path,
    needs_csrf_header,
    new_secret,
)
from models.tokens import TokenStatus
from vault.errors import TokenRejected, TokenUnusable

router = APIRouter(tags=["sign-in"])

_State = Query(min_length=1, max_length=200, description="The state the login route sent to Discord")


@router.get("/auth/discord/login", status_code=status.HTTP_302_FOUND, response_class=RedirectResponse)
async def login(
    ctx: Context, next: str | None = Query(None, max_length=2000, description="A path on this site")
) -> RedirectResponse:
    """Sends the browser to Discord's consent page; Discord comes back to /auth/discord/callback."""
    state, verifier = new_secret(), new_secret()
    await ctx.store.sessions.begin_sign_in(state, verifier, local_path(next))
    response = RedirectResponse(
        authorize_url(ctx.settings, state, verifier), status_code=status.HTTP_302_FOUND
    )
    response.set_cookie(
        SIGN_IN_COOKIE,
        state,
        max_age=int(SIGN_IN_TTL.total_seconds()),
        path=SIGN_IN_PATH,
        httponly=True,
        samesite="lax",
        secure=ctx.settings.console_url.startswith("https://"),
    )
    return response


@router.get(
    "/auth/discord/callback",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    responses={400: {"model": ErrorBody}, 502: {"model": ErrorBody}},
)
async def callback(
    ctx: Context,
    code: str = Query(min_length=1, max_length=200),
    state: str = _State,
    started: Annotated[str | None, Cookie(alias=SIGN_IN_COOKIE, include_in_schema=False)] = None,
) -> RedirectResponse:
    """Exchanges Discord's code, links the Discord account to an owner (a new free-tier owner on first
    sign-in), sets the session cookie and returns to the page the login started from."""
    if started != state:
        raise BadField("state", "is not the sign-in this browser started: start again at /auth/discord/login")
    pending = await ctx.store.sessions.take_sign_in(state)
    if pending is None:
        raise BadField("state", "unknown, used or expired sign-in state: start again at /auth/discord/login")
    try:
        tokens = await exchange_code(ctx.http, ctx.settings, code, pending.code_verifier)
    except CodeRejected as exc:
        raise BadField("code", str(exc)) from None
    user, guilds = await signed_in_user(ctx.http, ctx.settings, tokens)
    lifetime = timedelta(hours=ctx.settings.console_session_hours)
    secret = await ctx.store.sessions.start(user, [g for g in guilds if can_manage(g)], lifetime)
    response = RedirectResponse(pending.next_path, status_code=status.HTTP_302_FOUND)
    response.delete_cookie(SIGN_IN_COOKIE, path=SIGN_IN_PATH, httponly=True, samesite="lax")
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(lifetime.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=ctx.settings.console_url.startswith("https://"),
    )
    return response


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, responses={403: {"model": ErrorBody}})
async def logout(ctx: Context, request: Request, session: SessionCookie) -> Response:
    """Ends the console session (server-side too) and clears its cookie."""
    if session is not None:
        if needs_csrf_header(request.method, request.headers.get(CSRF_HEADER)):
            raise Forbidden(f"signing out from the console must send the header {CSRF_HEADER}: 1")
        await ctx.store.sessions.end(session)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


@router.get(
    "/auth/discord/guilds",
    response_model=list[ConsoleGuild],
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 502: {"model": ErrorBody}},
)
async def guilds(ctx: Context, principal: Caller) -> list[ConsoleGuild]:
    """The servers the signed-in person could manage when they signed in, and whether one of the owner's
    bots is in each (asked of Discord now, with each bot's token)."""
    if not principal.session:
        raise Forbidden("sign in with Discord to list your servers: an API key has no Discord account")
    present: set[str] = set()
    for token in await ctx.store.tokens.of_owner(principal.owner_id):
        if token.status is TokenStatus.revoked:
            continue
        try:
            present |= await ctx.vault.bot_guilds(token.token_id, actor="console-guilds")
        except (TokenRejected, TokenUnusable):
            # A dead token's bot is in no server it can serve; the health checks report it to the owner.
            continue
    return [
        ConsoleGuild(id=guild.id, name=guild.name, icon=guild.icon, bot_present=guild.id in present)
        for guild in await ctx.store.sessions.guilds(principal.key_id)
    ]
