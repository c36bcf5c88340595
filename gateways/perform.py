"""Performing one action, once: claim it in the ledger, send it, record it done.

The outcome says what the runner does with the record: nothing more (done, skipped as a repeat) or a dead
letter with the reason. Network failures are retried here with backoff; Discord's 5xx after discord.py's
own retries, and what Discord refuses (4xx), are final.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import aiohttp
import discord

from gateways import actions
from gateways.actions import AudioCommand, GatewayCommand, InvalidAction, RestCall
from gateways.fleet import Fleet
from gateways.ledger import ActionLedger, Claim
from gateways.rest import RestClients, is_unauthorized
from gateways.shard import BotCredentials
from models.actions import Action

log = logging.getLogger(__name__)

TRANSIENT_RETRIES = 5
READY_WAIT_S = 10.0
IMAGE_MAX_BYTES = 10 * 1024 * 1024
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
# Discord's answer to a second response to one interaction: on a retry it means the first one landed.
ALREADY_ACKNOWLEDGED = 40060


class Status(Enum):
    DONE = "done"
    SKIPPED = "skipped"  # performed before: a redelivery
    DEAD = "dead"  # not performed, and never will be: dead-letter it
    TOKEN_DEAD = "token_dead"  # Discord answered 401: revoke the token, dead-letter this and what follows


@dataclass(frozen=True)
class Outcome:
    status: Status
    reason: str = ""


class Unperformable(Exception):
    """The action cannot be performed now or later (the reason goes to the dead letter)."""


class TokenDead(Exception):
    """Discord answered 401: the token is dead and must not be used again."""


class ActionPerformer:
    def __init__(
        self, ledger: ActionLedger, rest: RestClients, fleet: Fleet, http: aiohttp.ClientSession
    ) -> None:
        self._ledger = ledger
        self._rest = rest
        self._fleet = fleet
        self._http = http

    async def perform(self, action: Action, bot: BotCredentials) -> Outcome:
        claim = await self._ledger.claim(action.action_id)
        if claim is Claim.DONE:
            return Outcome(Status.SKIPPED)
        try:
            await self._perform(action, bot, claim)
            outcome = Outcome(Status.DONE)
        except (InvalidAction, Unperformable) as exc:
            outcome = Outcome(Status.DEAD, str(exc))
        except TokenDead as exc:
            outcome = Outcome(Status.TOKEN_DEAD, str(exc))
        # Recorded either way: a dead-lettered action is not tried again on redelivery.
        await self._ledger.finish(action.action_id)
        return outcome

    async def _perform(self, action: Action, bot: BotCredentials, claim: Claim) -> None:
        plan = actions.plan(action, datetime.now(UTC))
        match plan:
            case RestCall():
                await self._rest_call(plan, bot, retry=claim is Claim.RETRY)
            case GatewayCommand():
                shard = self._fleet.shards.get(bot.bot_id)
                if shard is None or not await shard.wait_ready(READY_WAIT_S):
                    raise Unperformable(f"{action.kind}: bot {bot.bot_id} has no gateway connection")
                await shard.command(plan.payload)
            case AudioCommand():
                # No audio node is attached to this edge (voice needs DAVE end to end encryption, which an
                # audio node such as Lavalink provides): the command is recorded, not played.
                log.info(
                    "voice_play %s for bot %s in guild %s channel %s: no audio node, recorded only",
                    plan.command,
                    bot.bot_id,
                    plan.guild_id,
                    plan.channel_id,
                )

    async def _rest_call(self, call: RestCall, bot: BotCredentials, *, retry: bool) -> None:
        body = await self._with_images(call)
        client = self._rest.client(bot.bot_id, bot.token)
        for attempt in range(TRANSIENT_RETRIES + 1):
            try:
                await client.request(call, body)
                return
            except discord.HTTPException as exc:
                if is_unauthorized(exc):
                    raise TokenDead(f"{call.method} {call.path} answered 401") from None
                if retry and _already_done(call, exc):
                    return
                # A 5xx arrives here after discord.py's own retries: final, like a 4xx.
                detail = f"Discord answered {exc.status} (code {exc.code}): {exc.text[:120]}"
                raise Unperformable(detail) from None
            except discord.RateLimited as exc:
                raise Unperformable(f"rate limited for {exc.retry_after:.0f} s") from None
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                if attempt == TRANSIENT_RETRIES:
                    raise Unperformable(f"Discord unreachable: {type(exc).__name__}") from None
                await asyncio.sleep(2**attempt)

    async def _with_images(self, call: RestCall) -> dict[str, Any] | None:
        if not call.images:
            return call.body
        body = dict(call.body or {})
        for key, url in call.images.items():
            body[key] = url if url.startswith("data:image/") else await self._image_data(key, url)
        return body

    async def _image_data(self, key: str, url: str) -> str:
        """Discord takes avatars and banners as data URIs: fetch the image the persona names."""
        if not url.startswith(("https://", "http://")):
            raise InvalidAction(f"{key}_url: only http(s) and data:image URLs are accepted")
        try:
            async with self._http.get(url, timeout=aiohttp.ClientTimeout(total=15)) as response:
                content_type = response.content_type
                if response.status != 200 or content_type not in IMAGE_TYPES:
                    raise Unperformable(f"{key}_url: answered {response.status} {content_type}")
                data = await response.content.read(IMAGE_MAX_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unperformable(f"{key}_url: could not be fetched ({type(exc).__name__})") from None
        if len(data) > IMAGE_MAX_BYTES:
            raise Unperformable(f"{key}_url: larger than {IMAGE_MAX_BYTES} bytes")
        return f"data:{content_type};base64,{base64.b64encode(data).decode()}"


def _already_done(call: RestCall, exc: discord.HTTPException) -> bool:
    """On a retry of an attempt that may have landed, the answers that mean it did."""
    if call.method == "DELETE" and exc.status == 404:
        return True
    return exc.code == ALREADY_ACKNOWLEDGED
