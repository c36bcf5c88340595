"""Discord's OAuth2 over HTTP for the console's sign-in: the code exchange and the signed-in user's
account and guilds. Discord being down or answering oddly is a 502, never a half-made session."""

from __future__ import annotations

from typing import TypeVar

import httpx
from pydantic import TypeAdapter, ValidationError

from models.discord import DiscordUser, DiscordUserGuild, OAuth2Tokens
from settings import Settings
from vault.errors import DiscordUnavailable

T = TypeVar("T")
_TOKENS = TypeAdapter(OAuth2Tokens)
_USER = TypeAdapter(DiscordUser)
_GUILDS = TypeAdapter(list[DiscordUserGuild])


class CodeRejected(Exception):
    """Discord refused the code (used, expired, or not for this verifier): the person signs in again."""


async def exchange_code(
    http: httpx.AsyncClient, settings: Settings, code: str, verifier: str
) -> OAuth2Tokens:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": settings.discord_redirect_url,
        "code_verifier": verifier,
    }
    try:
        response = await http.post(
            f"{settings.discord_oauth_url}/api/oauth2/token",
            data=form,
            auth=(settings.discord_client_id, settings.discord_client_secret),
        )
    except httpx.HTTPError as exc:
        raise DiscordUnavailable(f"the OAuth2 token exchange failed: {type(exc).__name__}") from None
    if response.status_code == 400:
        raise CodeRejected("Discord rejected the authorization code; sign in again")
    return _parsed(response, _TOKENS, "oauth2/token")


async def signed_in_user(
    http: httpx.AsyncClient, settings: Settings, tokens: OAuth2Tokens
) -> tuple[DiscordUser, list[DiscordUserGuild]]:
    headers = {"Authorization": f"Bearer {tokens.access_token}"}
    try:
        user = await http.get(f"{settings.discord_oauth_url}/api/users/@me", headers=headers)
        guilds = await http.get(f"{settings.discord_oauth_url}/api/users/@me/guilds", headers=headers)
    except httpx.HTTPError as exc:
        raise DiscordUnavailable(f"reading the Discord account failed: {type(exc).__name__}") from None
    return _parsed(user, _USER, "users/@me"), _parsed(guilds, _GUILDS, "users/@me/guilds")


def _parsed(response: httpx.Response, adapter: TypeAdapter[T], route: str) -> T:
    if response.status_code != 200:
        raise DiscordUnavailable(f"Discord answered {response.status_code} on {route}")
    try:
        return adapter.validate_json(response.content)
    except ValidationError:
        raise DiscordUnavailable(f"Discord answered {route} with an unexpected body") from None
