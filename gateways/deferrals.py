"""Every slash command acknowledged within Discord's 3 s, however long the platform takes to answer it.

The runner that receives an INTERACTION_CREATE watches a deadline well inside the 3 s: an answer that comes
before it is the interaction's callback itself; otherwise the runner defers (callback type 5, "thinking...")
and the answer, when it comes, edits that original message or follows up, within the token's 15 minutes.
An answer and the deferral of one interaction never race: whichever goes first decides what the other does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import discord

from gateways.actions import deferral_call
from gateways.rest import RestClients
from gateways.shard import BotCredentials

log = logging.getLogger(__name__)

# Interaction type 2: a slash command (pings, autocomplete and components are answered differently).
APPLICATION_COMMAND = 2
# An interaction token lives 15 minutes; what is still pending then can never be answered.
TOKEN_LIFE_S = 15 * 60


@dataclass
class Pending:
    received_at: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    deferred: bool = False
    timer: asyncio.Task[None] | None = None


class Deferrals:
    def __init__(self, rest: RestClients, defer_after_s: float) -> None:
        self._rest = rest
        self._defer_after_s = defer_after_s
        # By arrival, so the expired ones are at the front.
        self._pending: OrderedDict[str, Pending] = OrderedDict()

    def watched(self) -> frozenset[str]:
        """The interactions received here and not answered yet."""
        return frozenset(self._pending)

    def received(self, bot: BotCredentials, interaction: dict[str, Any]) -> None:
        """An INTERACTION_CREATE this runner forwards: defer it unless it is answered before the deadline."""
        interaction_id, token = interaction.get("id"), interaction.get("token")
        if interaction.get("type") != APPLICATION_COMMAND or not interaction_id or not isinstance(token, str):
            return
        now = time.monotonic()
        self._expire(now)
        if interaction_id in self._pending:  # replayed after a RESUME: already watched
            return
        pending = self._pending[str(interaction_id)] = Pending(now)
        pending.timer = asyncio.create_task(self._defer_later(bot, str(interaction_id), token, pending))

    def _expire(self, now: float) -> None:
        while self._pending:
            interaction_id, pending = next(iter(self._pending.items()))
            if now - pending.received_at < TOKEN_LIFE_S:
                return
            del self._pending[interaction_id]
            if pending.timer is not None:
                pending.timer.cancel()

    async def _defer_later(
        self, bot: BotCredentials, interaction_id: str, token: str, pending: Pending
    ) -> None:
        await asyncio.sleep(self._defer_after_s)
        async with pending.lock:
            try:
                await self._rest.client(bot.bot_id, bot.token).request(deferral_call(interaction_id, token))
                pending.deferred = True
            except discord.HTTPException as exc:
                # 40060: another runner acknowledged it (a replay after failover); 10062: it came too late.
                log.info("bot %s: interaction %s not deferred: %s", bot.bot_id, interaction_id, exc)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("bot %s: deferring interaction %s failed: %r", bot.bot_id, interaction_id, exc)

    @contextlib.asynccontextmanager
    async def answering(self, interaction_id: str) -> AsyncIterator[bool]:
        """Held while the interaction is answered; says whether it was deferred here. An interaction this
        runner never received (it arrived before a failover) counts as not deferred: the answer finds out
        from Discord."""
        pending = self._pending.get(interaction_id)
        if pending is None:
            yield False
            return
        async with pending.lock:
            if pending.timer is not None:
                pending.timer.cancel()
            yield pending.deferred
        self._pending.pop(interaction_id, None)
