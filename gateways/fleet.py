"""The shards of one runner and what they share: the session, the Kafka producer, the identify limits and
the session checkpoints in Redis.

A bot is connected as the shard count GET /gateway/bot recommends (Discord routes a guild's events to shard
(guild_id >> 22) % count, DMs to shard 0); all its shards live in the runner that owns the bot, the one
consuming its actions, so a voice-state or presence command always finds the shard it needs. A bot moving
to another runner keeps the count its stored sessions were opened with, so every shard RESUMEs.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any

import aiohttp
import discord
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from gateways import dispatch, protocol
from gateways.forwarder import EventForwarder
from gateways.heartbeats import Heartbeats
from gateways.identify import IdentifyLimiter, budget_wait_s
from gateways.rest import RestClients, is_unauthorized
from gateways.sessions import GatewaySession, SessionStore
from gateways.shard import BotCredentials, GatewayShard, TokenRejected
from models.events import EventEnvelope
from streams.catalog import DISCORD_EVENT_MAX_BYTES, DISCORD_EVENTS
from streams.codec import encode_key
from streams.sealing import DataKeys, seal_dispatch
from vault.store import HealthReason

log = logging.getLogger(__name__)

CHECKPOINT_INTERVAL_S = 1.0
# An event's value at most: the rest of a record's room is its key's and its batch's framing.
EVENT_VALUE_MAX_BYTES = DISCORD_EVENT_MAX_BYTES - 4 * 1024
VOICE_DISPATCHES = frozenset({"VOICE_STATE_UPDATE", "VOICE_SERVER_UPDATE"})
HANDSHAKES_IN_FLIGHT = 64
# CPython's asyncio gives every TLS connection a 256 KiB read buffer (sslproto.SSLProtocol.max_size): 305 KB
# per wss:// connection in all, 3 GB for ten thousand bots. A smaller buffer only means more reads per TLS
# record; with 4 KiB a TLS connection costs ~31 KB more than a plain one (measured, see gateways/README.md).
TLS_READ_BUFFER = 4 * 1024


def limit_tls_read_buffers(size: int = TLS_READ_BUFFER) -> None:
    """For the whole process: call before the first gateway connection."""
    asyncio.sslproto.SSLProtocol.max_size = size


TokenDeadHandler = Callable[[BotCredentials, HealthReason], Awaitable[None]]
# Told of every INTERACTION_CREATE as it arrives (gateways/deferrals.py acknowledges it in time).
InteractionHandler = Callable[[BotCredentials, dict[str, Any]], None]
# Told of every VOICE_STATE_UPDATE and VOICE_SERVER_UPDATE (gateways/voice/manager.py joins with them).
VoiceHandler = Callable[[BotCredentials, str, dict[str, Any]], None]
# Told which intents a bot identifies with, whenever the fleet learns them (at connect, after a 4014).
IntentsHandler = Callable[[BotCredentials, int], Awaitable[None]]
# What may go wrong asking Discord for a bot's layout; the runner's next roster round tries again.
_LAYOUT_ERRORS = (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError, ValidationError)


def guild_shard(guild_id: str, shard_count: int) -> int:
    """The shard Discord sends a guild's events to."""
    return (int(guild_id) >> 22) % shard_count


class Fleet:
    def __init__(
        self,
        *,
        http: aiohttp.ClientSession,
        rest: RestClients,
        producer: AIOKafkaProducer,
        events_topic: str,
        sessions: SessionStore,
        identify: IdentifyLimiter,
        gateway_url: str,
        intents: int,
        on_token_dead: TokenDeadHandler,
        keys: DataKeys,
        linger_s: float = 0.0,
        on_interaction: InteractionHandler | None = None,
        on_intents: IntentsHandler | None = None,
        handshakes_in_flight: int = HANDSHAKES_IN_FLIGHT,
    ) -> None:
        self.http = http
        self.gateway_url = gateway_url
        self.intents = intents
        self.handshakes = asyncio.Semaphore(handshakes_in_flight)
        self._heartbeats = Heartbeats()
        self._rest = rest
        # Events held up to `linger_s` and handed to the producer together (gateways/forwarder.py); the
        # producer itself should not linger.
        self._forwarder = EventForwarder(producer, events_topic, linger_s)
        self._keys = keys
        self._sessions = sessions
        self._identify = identify
        self._on_token_dead = on_token_dead
        self._on_interaction = on_interaction
        self._on_intents = on_intents
        # Set by the voice manager, which needs the fleet to join (so it comes after).
        self.on_voice: VoiceHandler | None = None
        self._codec = DISCORD_EVENTS.codec
        # bot id -> its shards, by shard id
        self.shards: dict[str, tuple[GatewayShard, ...]] = {}
        # Bots being connected afresh under a new shard count (after a 4011).
        self._resharding: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()
        # Shard -> the identify bucket it holds until its IDENTIFY is sent.
        self._buckets: dict[GatewayShard, str] = {}
        # Shards whose session or checkpoint changed since the last write to Redis.
        self._dirty: set[GatewayShard] = set()
        # Dispatches Kafka acknowledged, for metrics and the density benchmark.
        self.forwarded = 0

    def __contains__(self, bot_id: str) -> bool:
        return bot_id in self.shards or bot_id in self._resharding

    def all_shards(self) -> Iterator[GatewayShard]:
        return (shard for shards in self.shards.values() for shard in shards)

    def shards_for(self, bot_id: str, guild_id: str | None) -> tuple[GatewayShard, ...]:
        """The shard holding `guild_id`, or with None every shard of the bot; () when it is not here."""
        shards = self.shards.get(bot_id, ())
        if guild_id is None or not shards:
            return shards
        return (shards[guild_shard(guild_id, len(shards))],)

    # membership

    async def connect(self, bot: BotCredentials, min_shards: int = 1) -> tuple[GatewayShard, ...]:
        """Start the bot's shards (or let held ones reconnect); () when Discord could not be asked how."""
        shards = self.shards.get(bot.bot_id)
        if shards is not None:
            for shard in shards:
                shard.release()
            return shards
        try:
            gateway = await self._rest.gateway_bot(bot.bot_id, bot.token)
            application = await self._rest.application(bot.bot_id, bot.token, fresh=True)
            stored = await self._sessions.load(bot.bot_id, 0)
            count = max(stored.shard_count if stored is not None else gateway.shards, min_shards)
            sessions = await self._sessions.load_bot(bot.bot_id, count)
        except _LAYOUT_ERRORS as exc:
            if is_unauthorized(exc):
                await self._on_token_dead(bot, "revoked_401")
            else:
                log.warning("bot %s: GET /gateway/bot or /applications/@me failed: %s", bot.bot_id, exc)
            return ()
        if bot.bot_id in self.shards:  # connected by a concurrent call meanwhile
            return self.shards[bot.bot_id]
        intents = protocol.granted_intents(self.intents, application.flags)
        shards = self.shards[bot.bot_id] = tuple(
            GatewayShard(self, bot, session, shard_id, count, intents)
            for shard_id, session in enumerate(sessions)
        )
        for shard in shards:
            shard.start()
        if count > 1:
            log.info("bot %s: %d shards", bot.bot_id, count)
        await self._intents_learned(bot, intents)
        return shards

    async def disconnect(self, bot_ids: Iterable[str]) -> None:
        """Close these bots' connections keeping their sessions, and write their checkpoints, so whichever
        runner connects them next RESUMEs where Kafka's acknowledgements end."""
        shards = [shard for bot_id in bot_ids for shard in self.shards.pop(bot_id, ())]
        await asyncio.gather(*(shard.stop() for shard in shards))
        self._forget_buckets(shards)
        # What they forwarded last is acknowledged first, so the checkpoint covers it.
        await self._forwarder.flush()
        self._dirty.difference_update(shards)
        await self._save(shards)

    def abandon(self, bot_id: str) -> None:
        """Stop a bot's shards now, without waiting and without a checkpoint: its token is dead."""
        self._stop_soon(self.shards.pop(bot_id, ()))

    def _stop_soon(self, shards: Iterable[GatewayShard]) -> None:
        shards = list(shards)
        for shard in shards:
            shard.hold()
            self._in_background(shard.stop())
        self._forget_buckets(shards)

    def _forget_buckets(self, shards: Iterable[GatewayShard]) -> None:
        """A shard stopped while waiting to identify leaves its bucket to expire by itself."""
        for shard in shards:
            self._buckets.pop(shard, None)

    def _in_background(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def hold(self, bot_ids: Iterable[str]) -> None:
        for bot_id in bot_ids:
            for shard in self.shards.get(bot_id, ()):
                shard.hold()

    def release_all(self) -> None:
        for shard in self.all_shards():
            shard.release()

    async def close(self) -> None:
        # Stops and reshards under way finish first, so nothing they start outlives the fleet.
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.disconnect(list(self.shards))

    # checkpoints

    async def checkpoint(self, *, flush: bool = False) -> None:
        """Write the sessions that changed; with `flush`, after Kafka acknowledged everything sent so far."""
        if flush:
            await self._forwarder.flush()
        dirty, self._dirty = self._dirty, set()
        await self._save(dirty)

    async def _save(self, shards: Iterable[GatewayShard]) -> None:
        records: list[tuple[str, int, GatewaySession | None]] = []
        for shard in shards:
            try:
                records.append((shard.bot_id, shard.shard_id, shard.session()))
            except ValidationError as exc:
                # One shard's unusable session must not cost the others their checkpoints; its stored
                # record stays as it was, and a failed RESUME from it only means a new IDENTIFY.
                log.warning(
                    "bot %s shard %s: session not checkpointed: %s",
                    shard.bot_id,
                    shard.shard_id,
                    exc.errors()[0]["msg"],
                )
        if records:
            await self._sessions.save_many(records)

    async def run(self) -> None:
        """The fleet's own work, until cancelled: every shard's heartbeats and the session checkpoints."""
        await asyncio.gather(self._heartbeats.run(), self._run_checkpoints())

    async def _run_checkpoints(self, interval_s: float = CHECKPOINT_INTERVAL_S) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.checkpoint()
            except Exception:
                log.exception("writing gateway session checkpoints failed; retrying")

    # ShardHost

    async def publish(
        self, shard: GatewayShard, seq: int | None, event_type: str, data: dict[str, Any]
    ) -> None:
        envelope = await self._envelope(shard, seq, event_type, data)
        value = None if envelope is None else self._codec.encode(envelope)
        if value is not None and len(value) > EVENT_VALUE_MAX_BYTES:
            # Kafka would refuse it, and resuming to get it again would bring the same dispatch back.
            log.error(
                "bot %s: %s dispatch #%s is %d bytes, over the %d of a discord.events record: not forwarded",
                shard.bot_id,
                event_type,
                seq,
                len(value),
                EVENT_VALUE_MAX_BYTES,
            )
            value = None
        if envelope is None or value is None:
            if seq is not None:
                shard.checkpoint.skipped(seq)
            return
        if seq is not None:
            shard.checkpoint.received(seq)
        if event_type == "INTERACTION_CREATE" and self._on_interaction is not None:
            self._on_interaction(shard.bot, data)
        if event_type in VOICE_DISPATCHES and self.on_voice is not None:
            self.on_voice(shard.bot, event_type, data)
        await self._forwarder.send(
            value,
            encode_key(envelope.key),
            partial(self._delivered, shard, shard.generation, seq),
        )

    async def _envelope(
        self, shard: GatewayShard, seq: int | None, event_type: str, data: dict[str, Any]
    ) -> EventEnvelope | None:
        """The dispatch's envelope with its personal fields sealed; None when it is not forwarded."""
        if shard.generation is None:
            return None  # before READY: nothing to resume from, nothing to name it by
        received_at = datetime.now(UTC)
        event_id = dispatch.event_id(shard.bot_id, shard.generation, seq)
        # Sealed before the envelope is built, so it is built once. Sealing may create the user's data key
        # first (one database round trip per new user): the deferral watch starts after it, well inside its
        # 1.5 s. Data that is no object is sealed as nothing: the envelope's validation refuses it below.
        sealed = await seal_dispatch(event_id, data, self._keys) if isinstance(data, dict) else None
        try:
            return dispatch.envelope(
                event_id,
                shard.bot_id,
                shard.shard_id,
                seq,
                event_type,
                data,
                received_at,
                sealed=sealed,
            )
        except ValidationError as exc:
            log.warning(
                "bot %s: dispatch %s #%s not forwarded: %s", shard.bot_id, event_type, seq, exc.errors()[0]
            )
            return None

    def _delivered(
        self, shard: GatewayShard, generation: str | None, seq: int | None, delivery: asyncio.Future[Any]
    ) -> None:
        if delivery.cancelled() or delivery.exception() is not None:
            log.warning(
                "bot %s: dispatch #%s not acknowledged by Kafka; resuming to get it again", shard.bot_id, seq
            )
            shard.replay()
            return
        # An acknowledgement from an earlier generation says nothing about this one's sequence numbers.
        if seq is not None and shard.generation == generation:
            shard.checkpoint.done(seq)
            self._dirty.add(shard)
        self.forwarded += 1

    async def before_identify(self, shard: GatewayShard) -> None:
        bot = shard.bot
        while True:
            try:
                limit = (await self._rest.gateway_bot(bot.bot_id, bot.token)).session_start_limit
            except Exception as exc:
                if is_unauthorized(exc):
                    raise TokenRejected(f"bot {bot.bot_id}: GET /gateway/bot answered 401") from None
                raise
            wait = budget_wait_s(limit)
            if wait <= 0:
                break
            log.warning("bot %s: daily identify budget spent; waiting %.0f s", bot.bot_id, wait)
            await asyncio.sleep(wait)
        self._buckets[shard] = await self._identify.acquire(bot.bot_id, shard.shard_id, limit.max_concurrency)

    async def identify_sent(self, shard: GatewayShard) -> None:
        bucket = self._buckets.pop(shard, None)
        if bucket is not None:
            await self._identify.sent(bucket)

    async def token_dead(self, shard: GatewayShard, reason: HealthReason) -> None:
        shards = self.shards.pop(shard.bot_id, (shard,))
        # The calling shard is ending by itself; its siblings must not use the token again either.
        self._stop_soon(other for other in shards if other is not shard)
        self._dirty.difference_update(shards)
        await self._sessions.save_many((shard.bot_id, other.shard_id, None) for other in shards)
        await self._on_token_dead(shard.bot, reason)

    async def intents_disallowed(self, shard: GatewayShard) -> bool:
        bot = shard.bot
        try:
            flags = (await self._rest.application(bot.bot_id, bot.token, fresh=True)).flags
        except _LAYOUT_ERRORS:
            flags = 0  # unknown: no privileged intent is sure to be granted
        granted = protocol.granted_intents(shard.intents, flags)
        if granted == shard.intents:
            # The flags claim a grant Discord just refused: drop every privileged intent rather than send
            # the same IDENTIFY again.
            granted = shard.intents & ~protocol.PRIVILEGED_INTENTS
        if granted == shard.intents:
            return False
        log.warning(
            "bot %s shard %s: Discord refused privileged intents; identifying with %s instead of %s",
            bot.bot_id,
            shard.shard_id,
            granted,
            shard.intents,
        )
        shard.intents = granted
        await self._intents_learned(bot, granted)
        return True

    async def _intents_learned(self, bot: BotCredentials, intents: int) -> None:
        if self._on_intents is not None:
            await self._on_intents(bot, intents)

    def sharding_required(self, shard: GatewayShard) -> None:
        bot, refused = shard.bot, shard.shard_count
        if bot.bot_id in self._resharding or shard not in self.shards.get(bot.bot_id, ()):
            return  # its sibling already asked, or a shard of a layout already replaced
        shards = self.shards.pop(bot.bot_id, ())
        self._resharding.add(bot.bot_id)
        log.warning("bot %s: Discord requires more than %d shards; sharding afresh", bot.bot_id, refused)

        async def reshard() -> None:
            try:
                await asyncio.gather(*(other.stop() for other in shards))
                self._forget_buckets(shards)
                self._dirty.difference_update(shards)
                await self._sessions.save_many((bot.bot_id, other.shard_id, None) for other in shards)
            finally:
                self._resharding.discard(bot.bot_id)
            # At least one shard more than the refused layout, whatever GET /gateway/bot recommends.
            await self.connect(bot, min_shards=refused + 1)

        self._in_background(reshard())

    def session_changed(self, shard: GatewayShard) -> None:
        self._dirty.add(shard)

    def schedule_heartbeat(self, shard: GatewayShard, due: float) -> None:
        self._heartbeats.schedule(shard, due)
