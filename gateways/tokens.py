"""A dead token is never used again: Cloudflare bans the IP of every bot behind it after 10,000 invalid
requests (401/403/429) in 10 minutes, and a revoked token's 401s count."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from gateways.shard import BotCredentials
from vault.store import HealthReason, TokenVault

log = logging.getLogger(__name__)

MARK_ATTEMPTS = 5


class TokenGuard:
    def __init__(self, vault: TokenVault, actor: str) -> None:
        self._vault = vault
        self._actor = actor
        self._revoked: set[str] = set()
        # Called synchronously on the first sign of death, before any await, so nothing uses the token after.
        self._stoppers: list[Callable[[str], None]] = []

    def on_revoked(self, stop: Callable[[str], None]) -> None:
        self._stoppers.append(stop)

    def is_revoked(self, bot_id: str) -> bool:
        return bot_id in self._revoked

    async def revoke(self, bot: BotCredentials, reason: HealthReason, detail: str = "") -> None:
        """Stop every use of the bot's token in this runner now, then mark it revoked in the vault, which
        announces it on tokens.health (through the outbox) so its deployments get another token."""
        if bot.bot_id in self._revoked:
            return
        self._revoked.add(bot.bot_id)
        for stop in self._stoppers:
            stop(bot.bot_id)
        log.warning("bot %s: token %s is dead (%s); not using it again", bot.bot_id, bot.token_id, reason)
        for attempt in range(MARK_ATTEMPTS):
            try:
                await self._vault.mark_revoked(bot.token_id, reason=reason, actor=self._actor, detail=detail)
                return
            except Exception:
                # This runner stops using the token either way; another runner would hit one 401 and mark it.
                log.exception("bot %s: marking token %s revoked failed", bot.bot_id, bot.token_id)
                await asyncio.sleep(2**attempt)
