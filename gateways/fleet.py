"""The shards of one runner and what they share: the session, the Kafka producer, the identify limits and
the session checkpoints in Redis."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from gateways import dispatch
from gateways.heartbeats import Heartbeats
from gateways.identify import IdentifyLimiter, budget_wait_s
from gateways.rest import RestClients, is_unauthorized
from gateways.sessions import GatewaySession, SessionStore
from gateways.shard import BotCredentials, GatewayShard, TokenRejected
from models.events import EventEnvelope
from streams.catalog import DISCORD_EVENTS
from streams.codec import encode_key
from vault.store import HealthReason

log = logging.getLogger(__name__)

CHECKPOINT_INTERVAL_S = 1.0
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
        on_interaction: InteractionHandler | None = None,
        handshakes_in_flight: int = HANDSHAKES_IN_FLIGHT,
    ) -> None:
        self.http = http
        self.gateway_url = gateway_url
        self.intents = intents
        self.handshakes = asyncio.Semaphore(handshakes_in_flight)
        self._heartbeats = Heartbeats()
        self._rest = rest
        self._producer = producer
        self._events_topic = events_topic
        self._sessions = sessions
        self._identify = identify
        self._on_token_dead = on_token_dead
        self._on_interaction = on_interaction
        self._codec = DISCORD_EVENTS.codec
        self.shards: dict[str, GatewayShard] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        # Shards whose session or checkpoint changed since the last write to Redis.
        self._dirty: set[GatewayShard] = set()
        # Dispatches Kafka acknowledged, for metrics and the density benchmark.
        self.forwarded = 0

    def __contains__(self, bot_id: str) -> bool:
        return bot_id in self.shards

    # membership

    async def connect(self, bot: BotCredentials) -> GatewayShard:
        shard = self.shards.get(bot.bot_id)
        if shard is not None:
            shard.release()
            return shard
        session = await self._sessions.load(bot.bot_id, 0)
        if bot.bot_id in self.shards:  # connected by a concurrent call meanwhile
            return self.shards[bot.bot_id]
        shard = self.shards[bot.bot_id] = GatewayShard(self, bot, session)
        shard.start()
        return shard

    async def disconnect(self, bot_ids: Iterable[str]) -> None:
        """Close these bots' connections keeping their sessions, and write their checkpoints, so whichever
        runner connects them next RESUMEs where Kafka's acknowledgements end."""
        shards = [shard for bot_id in bot_ids if (shard := self.shards.pop(bot_id, None)) is not None]
        await asyncio.gather(*(shard.stop() for shard in shards))
        # What they forwarded last is acknowledged first, so the checkpoint covers it.
        await self._producer.flush()
        self._dirty.difference_update(shards)
        await self._save(shards)

    def abandon(self, bot_id: str) -> None:
        """Stop a bot's shard now, without waiting and without a checkpoint: its token is dead."""
        shard = self.shards.pop(bot_id, None)
        if shard is not None:
            shard.hold()
            task = asyncio.create_task(shard.stop())
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    def hold(self, bot_ids: Iterable[str]) -> None:
        for bot_id in bot_ids:
            shard = self.shards.get(bot_id)
            if shard is not None:
                shard.hold()

    def release_all(self) -> None:
        for shard in self.shards.values():
            shard.release()

    async def close(self) -> None:
        await self.disconnect(list(self.shards))

    # checkpoints

    async def checkpoint(self, *, flush: bool = False) -> None:
        """Write the sessions that changed; with `flush`, after Kafka acknowledged everything sent so far."""
        if flush:
            await self._producer.flush()
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
        envelope = self._envelope(shard, seq, event_type, data)
        if envelope is None:
            if seq is not None:
                shard.checkpoint.skipped(seq)
            return
        if seq is not None:
            shard.checkpoint.received(seq)
        if event_type == "INTERACTION_CREATE" and self._on_interaction is not None:
            self._on_interaction(shard.bot, data)
        delivery = await self._producer.send(
            self._events_topic, self._codec.encode(envelope), key=encode_key(envelope.key)
        )
        delivery.add_done_callback(partial(self._delivered, shard, shard.generation, seq))

    @staticmethod
    def _envelope(
        shard: GatewayShard, seq: int | None, event_type: str, data: dict[str, Any]
    ) -> EventEnvelope | None:
        if shard.generation is None:
            return None  # before READY: nothing to resume from, nothing to name it by
        try:
            return dispatch.envelope(
                shard.bot_id, shard.shard_id, shard.generation, seq, event_type, data, datetime.now(UTC)
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
                limit = await self._rest.session_start_limit(bot.bot_id, bot.token)
            except Exception as exc:
                if is_unauthorized(exc):
                    raise TokenRejected(f"bot {bot.bot_id}: GET /gateway/bot answered 401") from None
                raise
            wait = budget_wait_s(limit)
            if wait <= 0:
                break
            log.warning("bot %s: daily identify budget spent; waiting %.0f s", bot.bot_id, wait)
            await asyncio.sleep(wait)
        await self._identify.acquire(bot.bot_id, shard.shard_id, limit.max_concurrency)

    async def token_dead(self, shard: GatewayShard, reason: HealthReason) -> None:
        self.shards.pop(shard.bot_id, None)
        self._dirty.discard(shard)
        await self._sessions.forget(shard.bot_id, shard.shard_id)
        await self._on_token_dead(shard.bot, reason)

    def session_changed(self, shard: GatewayShard) -> None:
        self._dirty.add(shard)

    def schedule_heartbeat(self, shard: GatewayShard, due: float) -> None:
        self._heartbeats.schedule(shard, due)
