"""Performing one action, once: claim it in the ledger, send it, record it done.

The outcome says what the runner does with the record: nothing more (done, skipped as a repeat) or a dead
letter with the reason. Network failures are retried here with backoff; Discord's 5xx after discord.py's
own retries, and what Discord refuses (4xx), are final.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import aiohttp
import discord

from gateways import actions
from gateways.actions import GatewayCommand, InvalidAction, RestCall, VoiceCommand
from gateways.deferrals import Deferrals
from gateways.fleet import Fleet
from gateways.ledger import ActionLedger, Claim
from gateways.media import MediaRefused, image_data_uri
from gateways.rest import RestClients, is_unauthorized
from gateways.shard import BotCredentials
from gateways.voice.manager import VoiceFailed, VoiceManager
from models.actions import (
    Action,
    CreateScheduledEvent,
    InteractionResponse,
    Report,
    ReportedAction,
    SendMessage,
    TypingIndicator,
)

log = logging.getLogger(__name__)

TRANSIENT_RETRIES = 5
READY_WAIT_S = 10.0
# Discord's answer to a second response to one interaction: it was deferred, or an earlier attempt of this
# answer landed; either way the answer now edits the original.
ALREADY_ACKNOWLEDGED = 40060
ALREADY_CROSSPOSTED = 40033
# Discord's answer to a change of a scheduled event that is over: on a retry, the first attempt ended it.
EVENT_FINISHED = 180000


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


class AlreadyAcknowledged(Exception):
    """The interaction has its response already (deferred by a runner before this one, or this answer's own
    earlier attempt)."""


class TokenDead(Exception):
    """Discord answered 401: the token is dead and must not be used again."""


class ActionPerformer:
    def __init__(
        self,
        ledger: ActionLedger,
        rest: RestClients,
        fleet: Fleet,
        deferrals: Deferrals,
        media: aiohttp.ClientSession,
        voice: VoiceManager,
        allow_private_media: bool = False,
    ) -> None:
        """`media`: the session persona images are fetched with (gateways.media.media_session)."""
        self._ledger = ledger
        self._rest = rest
        self._fleet = fleet
        self._deferrals = deferrals
        self._media = media
        self._voice = voice
        self._allow_private_media = allow_private_media

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
        if isinstance(action, ReportedAction) and action.report is not None:
            outcome = await self._report(action, action.report, outcome, bot, retry=claim is Claim.RETRY)
        # Recorded either way: a dead-lettered action is not tried again on redelivery.
        await self._ledger.finish(action.action_id)
        return outcome

    async def _report(
        self, action: ReportedAction, report: Report, outcome: Outcome, bot: BotCredentials, *, retry: bool
    ) -> Outcome:
        """Tell the channel and the moderation log what Discord answered; the action's outcome stands."""
        if outcome.status is Status.TOKEN_DEAD:
            return outcome
        text = actions.report_text(report, outcome.reason if outcome.status is Status.DEAD else None)
        for call in actions.report_calls(action, report, text):
            try:
                if isinstance(call, InteractionResponse):
                    await self._answer(call, bot, retry=retry)
                else:
                    await self._rest_call(call, bot, retry=retry)
            except Unperformable as exc:
                where = "the interaction" if isinstance(call, InteractionResponse) else call.path
                log.warning("action %s: its report to %s failed: %s", action.action_id, where, exc)
            except TokenDead as exc:
                return Outcome(Status.TOKEN_DEAD, str(exc))
        return outcome

    async def _answer(self, response: InteractionResponse, bot: BotCredentials, *, retry: bool) -> None:
        """The interaction's response if nothing acknowledged it yet; else the edit of its deferral."""
        async with self._deferrals.answering(response.interaction_id) as deferred:
            if not deferred:
                try:
                    await self._rest_call(actions.interaction_callback(response), bot, retry=retry)
                    return
                except AlreadyAcknowledged:
                    pass
            try:
                application_id = await self._rest.application_id(bot.bot_id, bot.token)
            except discord.HTTPException as exc:
                raise Unperformable(f"the bot's application: Discord answered {exc.status}") from None
            for call in actions.deferred_answer(response, application_id):
                await self._rest_call(call, bot, retry=retry)

    async def _perform(self, action: Action, bot: BotCredentials, claim: Claim) -> None:
        if isinstance(action, InteractionResponse):
            await self._answer(action, bot, retry=claim is Claim.RETRY)
            return
        plan = actions.plan(action, datetime.now(UTC))
        match plan:
            case RestCall():
                retry = claim is Claim.RETRY
                if retry and isinstance(action, CreateScheduledEvent) and await self._event_exists(plan, bot):
                    return
                answered = await self._rest_call(plan, bot, retry=retry)
                if isinstance(action, SendMessage) and action.crosspost and answered is not None:
                    # A retried send returns the message its nonce made the first time.
                    published = actions.crosspost(action.channel_id, answered["id"])
                    await self._rest_call(published, bot, retry=retry)
                if isinstance(action, TypingIndicator):
                    await self._keep_typing(plan, bot, action.delay_ms)
            case GatewayCommand():
                shards = self._fleet.shards_for(bot.bot_id, None)
                if not shards:
                    raise Unperformable(f"{action.kind}: bot {bot.bot_id} has no gateway connection")
                for shard in shards:
                    if not await shard.wait_ready(READY_WAIT_S):
                        where = f"bot {bot.bot_id} shard {shard.shard_id}"
                        raise Unperformable(f"{action.kind}: {where} has no gateway connection")
                    await shard.command(plan.payload)
            case VoiceCommand():
                try:
                    await self._voice.perform(plan.guild_id, plan.action, bot)
                except VoiceFailed as exc:
                    raise Unperformable(f"{action.kind}: {exc}") from None

    async def _event_exists(self, create: RestCall, bot: BotCredentials) -> bool:
        """Whether a create's first attempt made the scheduled event (it may have landed before a crash)."""
        listing = RestCall("GET", "/guilds/{guild_id}/scheduled-events", dict(create.params))
        try:
            listed = await self._rest.client(bot.bot_id, bot.token).request(listing)
        except discord.HTTPException as exc:
            if is_unauthorized(exc):
                raise TokenDead(f"GET {listing.path} answered 401") from None
            raise Unperformable(f"the guild's scheduled events: Discord answered {exc.status}") from None
        return actions.created_before(create, listed, bot.bot_id)

    async def _keep_typing(self, call: RestCall, bot: BotCredentials, delay_ms: int) -> None:
        """Hold the bot's lane while it "types": its next action (the reply) follows after the pause,
        with the indicator triggered again before it fades."""
        pauses = actions.typing_pauses(delay_ms)
        for index, pause in enumerate(pauses):
            if index:
                await self._rest_call(call, bot, retry=False)
            await asyncio.sleep(pause)

    async def _rest_call(self, call: RestCall, bot: BotCredentials, *, retry: bool) -> Any:
        """Discord's answer to the call (None when a retry finds it done already)."""
        body = await self._with_images(call)
        client = self._rest.client(bot.bot_id, bot.token)
        for attempt in range(TRANSIENT_RETRIES + 1):
            try:
                return await client.request(call, body)
            except discord.HTTPException as exc:
                if is_unauthorized(exc):
                    raise TokenDead(f"{call.method} {call.path} answered 401") from None
                if exc.code == ALREADY_ACKNOWLEDGED:
                    raise AlreadyAcknowledged from None
                if retry and _already_done(call, exc):
                    return None
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
            if url.startswith("data:image/"):
                body[key] = url
                continue
            try:
                body[key] = await image_data_uri(
                    self._media, f"{key}_url", url, allow_private=self._allow_private_media
                )
            except MediaRefused as exc:
                raise Unperformable(str(exc)) from None
        return body


def _already_done(call: RestCall, exc: discord.HTTPException) -> bool:
    """On a retry of an attempt that may have landed, the answers that mean it did."""
    if call.method == "PATCH" and "scheduled-events" in call.path:
        return exc.code == EVENT_FINISHED
    return (call.method == "DELETE" and exc.status == 404) or exc.code == ALREADY_CROSSPOSTED
