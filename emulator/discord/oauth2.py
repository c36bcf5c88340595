"""Discord's OAuth2 for user sign-in: the consent page (/oauth2/authorize), the token endpoint
(/api/oauth2/token: authorization_code with PKCE, refresh_token) and the Bearer-token user routes
(/api/users/@me, /api/users/@me/guilds).

A browser has no emulated Discord login, so the emulator keeps one "signed-in" user: set by the consent
page's user picker or by the control route PUT /_control/oauth2/user. While one is set the consent page
approves at once, as Discord does for an application the user already authorised.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from settings.clock import Clock

from .errors import ApiError
from .http_util import error_response, json_response, no_content, read_object
from .payloads import user_payload
from .rules import member_permissions
from .world import Json, World

SCOPES = frozenset({"identify", "guilds", "email"})
# Discord: an authorization code lives 10 minutes, an access token 7 days.
CODE_TTL = timedelta(minutes=10)
ACCESS_TTL = timedelta(days=7)


class OAuth2Error(Exception):
    """An RFC 6749 error answer: {"error", "error_description"} with its status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


@dataclass(frozen=True)
class OAuth2Client:
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]


@dataclass(frozen=True)
class AuthorizationRequest:
    """The query of /oauth2/authorize, checked."""

    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    code_challenge: str | None


@dataclass(frozen=True)
class _Grant:
    client_id: str
    user_id: str
    scopes: tuple[str, ...]
    expires_at: datetime
    # Only for codes: the redirect URI and PKCE challenge the token request must match.
    redirect_uri: str = ""
    code_challenge: str | None = None


def s256(verifier: str) -> str:
    """PKCE's S256 transform: base64url(sha256(verifier)) without padding (RFC 7636)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@dataclass
class OAuth2Server:
    """Registered clients, the signed-in user, and the codes and tokens handed out."""

    world: World
    clock: Clock
    clients: dict[str, OAuth2Client] = field(default_factory=dict)
    signed_in_user_id: str | None = None
    codes: dict[str, _Grant] = field(default_factory=dict)
    access_tokens: dict[str, _Grant] = field(default_factory=dict)
    refresh_tokens: dict[str, _Grant] = field(default_factory=dict)

    def register(self, client: OAuth2Client) -> None:
        self.clients[client.client_id] = client

    def sign_in(self, user_id: str | None) -> None:
        if user_id is not None:
            self.world.user(user_id)
        self.signed_in_user_id = user_id

    def check_authorization(self, query: dict[str, str]) -> AuthorizationRequest:
        client = self.clients.get(query.get("client_id", ""))
        if client is None:
            raise OAuth2Error("invalid_client", "Unknown client_id")
        redirect_uri = query.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris:
            raise OAuth2Error("invalid_request", "Invalid redirect_uri: not registered for this application")
        if query.get("response_type") != "code":
            raise OAuth2Error("unsupported_response_type", "response_type must be code")
        scopes = tuple(query.get("scope", "").split())
        if not scopes or not set(scopes) <= SCOPES:
            raise OAuth2Error("invalid_scope", f"scope must be some of {' '.join(sorted(SCOPES))}")
        challenge = query.get("code_challenge")
        if challenge is not None and query.get("code_challenge_method") != "S256":
            raise OAuth2Error("invalid_request", "code_challenge_method must be S256")
        return AuthorizationRequest(client.client_id, redirect_uri, scopes, query.get("state"), challenge)

    def approve(self, request: AuthorizationRequest, user_id: str) -> str:
        """The redirect that hands the client a one-time code for `user_id`."""
        self.world.user(user_id)
        code = secrets.token_urlsafe(24)
        self.codes[code] = _Grant(
            request.client_id,
            user_id,
            request.scopes,
            self.clock() + CODE_TTL,
            request.redirect_uri,
            request.code_challenge,
        )
        params = {"code": code} | ({"state": request.state} if request.state is not None else {})
        return f"{request.redirect_uri}?{urlencode(params)}"

    def _client(self, form: dict[str, str], authorization: str) -> OAuth2Client:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if authorization.startswith("Basic "):
            decoded = base64.b64decode(authorization[6:]).decode(errors="replace")
            client_id, _, secret = decoded.partition(":")
        client = self.clients.get(client_id)
        if client is None or not secrets.compare_digest(client.client_secret, secret):
            raise OAuth2Error("invalid_client", "Invalid client credentials", 401)
        return client

    def exchange(self, form: dict[str, str], authorization: str = "") -> Json:
        """POST /api/oauth2/token: a code (with its PKCE verifier) or a refresh token for new tokens."""
        client = self._client(form, authorization)
        grant_type = form.get("grant_type")
        now = self.clock()
        if grant_type == "authorization_code":
            grant = self.codes.pop(form.get("code", ""), None)
            if grant is None or grant.client_id != client.client_id or grant.expires_at <= now:
                raise OAuth2Error("invalid_grant", 'Invalid "code" in request.')
            if form.get("redirect_uri") != grant.redirect_uri:
                raise OAuth2Error("invalid_grant", 'Invalid "redirect_uri" in request.')
            if (
                grant.code_challenge is not None
                and s256(form.get("code_verifier", "")) != grant.code_challenge
            ):
                raise OAuth2Error("invalid_grant", 'Invalid "code_verifier" in request.')
        elif grant_type == "refresh_token":
            grant = self.refresh_tokens.pop(form.get("refresh_token", ""), None)
            if grant is None or grant.client_id != client.client_id:
                raise OAuth2Error("invalid_grant", 'Invalid "refresh_token" in request.')
        else:
            raise OAuth2Error("unsupported_grant_type", 'Unsupported "grant_type" in request.')
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.access_tokens[access] = _Grant(client.client_id, grant.user_id, grant.scopes, now + ACCESS_TTL)
        self.refresh_tokens[refresh] = _Grant(client.client_id, grant.user_id, grant.scopes, now + ACCESS_TTL)
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": int(ACCESS_TTL.total_seconds()),
            "refresh_token": refresh,
            "scope": " ".join(grant.scopes),
        }

    def bearer(self, authorization: str, scope: str) -> str:
        """The user an access token acts for; 401 for a bad or expired token, 403 without `scope`."""
        grant = self.access_tokens.get(authorization.removeprefix("Bearer ")) if authorization else None
        if grant is None or not authorization.startswith("Bearer ") or grant.expires_at <= self.clock():
            raise ApiError(401, 0, "401: Unauthorized")
        if scope not in grant.scopes:
            raise ApiError(403, 50001, "Missing Access")
        return grant.user_id

    def user_guilds(self, user_id: str) -> list[Json]:
        """GET /users/@me/guilds: partial guilds with the user's permissions in each."""
        guilds: list[Json] = []
        for guild in self.world.guilds.values():
            member = guild.members.get(user_id)
            if member is None:
                continue
            everyone = int(guild.roles[guild.id]["permissions"])
            roles = [int(guild.roles[r]["permissions"]) for r in member.roles if r in guild.roles]
            permissions = member_permissions(guild.owner_id, user_id, roles, everyone)
            guilds.append(
                {
                    "id": guild.id,
                    "name": guild.name,
                    "icon": None,
                    "owner": guild.owner_id == user_id,
                    "permissions": str(permissions),
                    "features": [],
                }
            )
        return guilds


OAUTH2 = web.AppKey("oauth2", OAuth2Server)
Handler = Callable[[web.Request], Awaitable[web.Response]]


def _oauth2(request: web.Request) -> OAuth2Server:
    return request.app[OAUTH2]


def _error(error: OAuth2Error) -> web.Response:
    return json_response({"error": error.error, "error_description": error.description}, error.status)


def _consent_page(server: OAuth2Server, query: dict[str, str]) -> str:
    users = [user for user in server.world.users.values() if not user.bot]
    options = "".join(
        f'<option value="{html.escape(u.id)}">{html.escape(u.global_name or u.username)}</option>'
        for u in users
    )
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in query.items()
    )
    return (
        "<!doctype html><html><head><title>Discord emulator: authorize</title></head><body>"
        "<h1>Authorize application</h1>"
        f'<form method="post" action="/oauth2/authorize">{hidden}'
        f'<label>Sign in as <select name="user_id">{options}</select></label> '
        '<button type="submit">Authorize</button></form></body></html>'
    )


async def authorize_page(request: web.Request) -> web.StreamResponse:
    server = _oauth2(request)
    query = dict(request.query)
    try:
        checked = server.check_authorization(query)
    except OAuth2Error as error:
        return _error(error)
    if server.signed_in_user_id is not None:
        raise web.HTTPFound(server.approve(checked, server.signed_in_user_id))
    return web.Response(text=_consent_page(server, query), content_type="text/html")


async def authorize_submit(request: web.Request) -> web.StreamResponse:
    server = _oauth2(request)
    form = {key: str(value) for key, value in (await request.post()).items()}
    user_id = form.pop("user_id", "")
    try:
        checked = server.check_authorization(form)
        if user_id not in server.world.users:
            raise OAuth2Error("invalid_request", "user_id: no such user in the emulated world")
    except OAuth2Error as error:
        return _error(error)
    # Picking a user is signing in: later authorisations approve at once, as for a logged-in browser.
    server.sign_in(user_id)
    raise web.HTTPFound(server.approve(checked, user_id))


async def token(request: web.Request) -> web.Response:
    form = {key: str(value) for key, value in (await request.post()).items()}
    try:
        return json_response(_oauth2(request).exchange(form, request.headers.get("Authorization", "")))
    except OAuth2Error as error:
        return _error(error)


def _bearer_route(scope: str, answer: Callable[[OAuth2Server, str], Any]) -> Handler:
    """A user route: the Bearer token's user, with `scope`, gets `answer`; else Discord's 401 or 403."""

    async def handler(request: web.Request) -> web.Response:
        server = _oauth2(request)
        try:
            user_id = server.bearer(request.headers.get("Authorization", ""), scope)
        except ApiError as error:
            return error_response(error)
        return json_response(answer(server, user_id))

    return handler


me = _bearer_route(
    "identify",
    lambda server, user_id: {**user_payload(server.world.user(user_id)), "mfa_enabled": False, "flags": 0},
)
my_guilds = _bearer_route("guilds", OAuth2Server.user_guilds)


async def set_signed_in_user(request: web.Request) -> web.Response:
    """PUT /_control/oauth2/user {"user_id": id | null}: who the browser is signed in as."""
    user_id = (await read_object(request)).get("user_id")
    if user_id is not None and not isinstance(user_id, str):
        raise ApiError(400, 0, "user_id must be a string or null")
    _oauth2(request).sign_in(user_id)
    return no_content()


async def register_client(request: web.Request) -> web.Response:
    """POST /_control/oauth2/clients {"client_id", "client_secret", "redirect_uris": [...]}."""
    body = await read_object(request)
    client_id, secret, uris = body.get("client_id"), body.get("client_secret"), body.get("redirect_uris")
    if not isinstance(client_id, str) or not client_id.isdigit():
        raise ApiError(400, 0, "client_id must be a snowflake string")
    if not isinstance(secret, str) or not secret:
        raise ApiError(400, 0, "client_secret must be a non-empty string")
    if not isinstance(uris, list) or not uris or not all(isinstance(uri, str) for uri in uris):
        raise ApiError(400, 0, "redirect_uris must be a non-empty list of URLs")
    _oauth2(request).register(OAuth2Client(client_id, secret, tuple(uris)))
    return no_content()


def add_oauth2_routes(app: web.Application, world: World, clock: Clock) -> OAuth2Server:
    server = OAuth2Server(world, clock)
    app[OAUTH2] = server
    app.router.add_get("/oauth2/authorize", authorize_page)
    app.router.add_post("/oauth2/authorize", authorize_submit)
    app.router.add_post("/api/oauth2/token", token)
    app.router.add_get("/api/users/@me", me)
    app.router.add_get("/api/users/@me/guilds", my_guilds)
    app.router.add_put("/_control/oauth2/user", set_signed_in_user)
    app.router.add_post("/_control/oauth2/clients", register_client)
    return server
