"""Signing in to the owner console with Discord OAuth2 (authorization code with PKCE): the pure parts.

The login route stores a random state with its PKCE verifier and sends the browser to Discord; the
callback takes the state back once, exchanges the code with the verifier (api/discord_oauth.py), maps the
Discord account to an owner and starts a server-side session whose secret is the `deep_session` cookie.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import timedelta
from urllib.parse import urlencode

from models.discord import DiscordUserGuild
from settings import Settings

SESSION_COOKIE = "deep_session"
# The state of the sign-in this browser started: the callback must come back to the same browser, so a
# link carrying someone else's code cannot sign a person in as that someone (login CSRF).
SIGN_IN_COOKIE = "deep_sign_in"
SIGN_IN_PATH = "/auth/discord"
# Cookie-authenticated requests that change state must carry this header: a cross-site form cannot set
# it, so it defeats CSRF without a token (API keys need nothing: a browser never sends them by itself).
CSRF_HEADER = "X-Deep-Console"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SCOPES = "identify guilds"
# Long enough to sign in at Discord, short enough that a leaked state is soon useless.
SIGN_IN_TTL = timedelta(minutes=10)
DEFAULT_NEXT = "/console/"
# Discord's permission bits that let a person add a bot to a server.
MANAGE_GUILD = 1 << 5
ADMINISTRATOR = 1 << 3


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    # 256 random bits: a plain SHA-256 cannot be brute-forced and stays indexable (as API keys).
    return hashlib.sha256(secret.encode()).hexdigest()


def code_challenge(verifier: str) -> str:
    """PKCE S256: base64url(sha256(verifier)) without padding (RFC 7636)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def authorize_url(settings: Settings, state: str, verifier: str) -> str:
    query = {
        "response_type": "code",
        "client_id": settings.discord_client_id,
        "redirect_uri": settings.discord_redirect_url,
        "scope": SCOPES,
        "state": state,
        "code_challenge": code_challenge(verifier),
        "code_challenge_method": "S256",
        "prompt": "none",
    }
    return f"{settings.discord_oauth_url}/oauth2/authorize?{urlencode(query)}"


def local_path(next_path: str | None) -> str:
    """Where to land after sign-in: a path on this site only, so the login link is no open redirect."""
    if not next_path or not next_path.startswith("/") or next_path.startswith("//") or "\\" in next_path:
        return DEFAULT_NEXT
    return next_path


def can_manage(guild: DiscordUserGuild) -> bool:
    return guild.owner or bool(guild.permissions & (MANAGE_GUILD | ADMINISTRATOR))


def needs_csrf_header(method: str, header: str | None) -> bool:
    return method not in SAFE_METHODS and header != "1"
