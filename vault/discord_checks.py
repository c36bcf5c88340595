"""Asking Discord who a bot token belongs to and how far its application reaches."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from models.common import Snowflake
from models.tiers import TokenTier
from vault.errors import DiscordUnavailable, TokenRejected

# Discord's user flag for a verified bot (public_flags bit 16).
VERIFIED_BOT_FLAG = 1 << 16


def classify_tier(guild_count: int, verified: bool) -> TokenTier:
    """A bot's tier by reach: premium needs more than 100 guilds and verification, standard more than 10
    guilds; any other bot is lite."""
    if guild_count > 100 and verified:
        return TokenTier.premium
    if guild_count > 10:
        return TokenTier.standard
    return TokenTier.lite


@dataclass(frozen=True)
class BotIdentity:
    bot_user_id: Snowflake
    username: str
    application_id: Snowflake
    guild_count: int
    verified: bool

    @property
    def tier(self) -> TokenTier:
        return classify_tier(self.guild_count, self.verified)


async def _discord_json(http: httpx.AsyncClient, base: str, route: str, token: SecretStr) -> object:
    try:
        response = await http.get(
            f"{base.rstrip('/')}/{route}",
            headers={"Authorization": f"Bot {token.get_secret_value()}"},
        )
    except httpx.HTTPError as exc:
        raise DiscordUnavailable(f"GET {route} failed: {type(exc).__name__}") from None
    if response.status_code == 401:
        raise TokenRejected(f"Discord rejected the bot token (401 Unauthorized on {route})")
    if response.status_code == 429:
        raise DiscordUnavailable(f"GET {route} was rate limited (429)", rate_limited=True)
    if response.status_code != 200:
        raise DiscordUnavailable(f"GET {route} answered {response.status_code}")
    try:
        return response.json()
    except ValueError:
        return None


async def _discord_get(http: httpx.AsyncClient, base: str, route: str, token: SecretStr) -> dict[str, object]:
    body = await _discord_json(http, base, route, token)
    if not isinstance(body, dict):
        raise DiscordUnavailable(f"GET {route} answered something other than a JSON object")
    return body


async def validate_token(token: SecretStr, api_base: str, http: httpx.AsyncClient) -> BotIdentity:
    """Ask Discord who the token belongs to (users/@me) and how far the application reaches."""
    user = await _discord_get(http, api_base, "users/@me", token)
    application = await _discord_get(http, api_base, "oauth2/applications/@me", token)
    if not user.get("bot"):
        raise TokenRejected("the token belongs to a user account, not a bot")
    if not isinstance(user.get("id"), str) or not str(user["id"]).isdigit():
        raise DiscordUnavailable("users/@me answered without a user id")
    flags = user.get("public_flags") or user.get("flags") or 0
    guild_count = application.get("approximate_guild_count") or 0
    return BotIdentity(
        bot_user_id=str(user["id"]),
        username=str(user.get("username", "")),
        application_id=str(application.get("id", user["id"])),
        guild_count=int(guild_count) if isinstance(guild_count, int) else 0,
        verified=bool(int(flags) & VERIFIED_BOT_FLAG) if isinstance(flags, int) else False,
    )


async def bot_guild_ids(token: SecretStr, api_base: str, http: httpx.AsyncClient) -> set[str]:
    """The guilds the bot is in (its first 200, one page of users/@me/guilds: a console's picker needs no
    more)."""
    guilds = await _discord_json(http, api_base, "users/@me/guilds?limit=200", token)
    if not isinstance(guilds, list):
        raise DiscordUnavailable("GET users/@me/guilds answered something other than a JSON array")
    return {str(guild["id"]) for guild in guilds if isinstance(guild, dict) and "id" in guild}
