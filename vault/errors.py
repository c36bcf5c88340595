"""What the vault raises; each message names the token or the step that failed, never the token itself."""

from __future__ import annotations


class VaultError(Exception):
    """Base of the vault's errors. No message ever contains a token."""


class KeyRingError(VaultError):
    pass


class TokenNotFound(VaultError):
    pass


class TokenUnusable(VaultError):
    """The token is revoked: Discord rejected it, and every further use counts toward an IP ban."""


class TokenRejected(VaultError):
    """Discord answered 401: the token is wrong or was reset."""


class BotTaken(VaultError):
    """Another owner has this bot registered (a bot belongs to one owner at a time)."""


class DiscordUnavailable(VaultError):
    """Discord could not be asked (network error, 5xx, 429); the token may be fine."""

    def __init__(self, message: str, *, rate_limited: bool = False) -> None:
        super().__init__(message)
        self.rate_limited = rate_limited
