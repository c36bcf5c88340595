"""A gateway runner: one member of the `discord.actions` consumer group, holding the gateway connections of
the bots whose partitions it is assigned and performing their actions.

Failover is a rebalance. When a runner dies, the group gives its partitions to the others; they connect
those bots, which RESUME from the sessions in Redis (no identify spent), and consume the actions the dead
runner had not committed, which the ledger turns into no-ops where they were already performed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from redis.exceptions import RedisError

from gateways import protocol
from gateways.fleet import Fleet, limit_tls_read_buffers
from gateways.identify import IdentifyLimiter
from gateways.lanes import Lanes
from gateways.ledger import ActionLedger
from gateways.media import media_session
from gateways.ownership import OwnershipListener, bot_partition, owned
from gateways.perform import ActionPerformer, Status
from gateways.rest import RestClients, use_api_base
from gateways.roster import RosterEntry, load_roster, roster_entry
from gateways.sessions import SessionStore, connect_redis
from gateways.shard import BotCredentials
from gateways.tokens import TokenGuard
from gateways.watermark import Watermark
from models.actions import Action
from settings import Settings
from streams.catalog import DEAD_LETTERS, DISCORD_ACTIONS, DISCORD_EVENTS
from streams.codec import CodecError, encode_key
from streams.dead_letters import dead_letter
from vault.errors import VaultError
from vault.store import TokenVault

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunnerConfig:
    runner_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    intents: tuple[str, ...] = protocol.DEFAULT_INTENTS
    roster_interval_s: float = 3.0
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    max_poll_interval_ms: int = 300_000
    batch_max_records: int = 500
    # Actions fetched but not yet performed, across all lanes, before fetching pauses.
    max_queued_actions: int = 5_000
    # How long a rebalance waits for the actions of revoked partitions before dropping them to redelivery.
    drain_s: float = 10.0
    rest_idle_s: float = 600.0
    # Concurrent token decryptions when a runner takes over many bots at once.
    decrypt_concurrency: int = 8

    @property
    def actor(self) -> str:
        return f"gateway:{self.runner_id}"


COMMIT_INTERVAL_S = 1.0
# Failures of the platform's own services: worth retrying, unlike a bug or Discord refusing an action.
INFRASTRUCTURE_ERRORS = (OSError, KafkaError, RedisError, asyncpg.PostgresError, asyncpg.InterfaceError)


@dataclass(frozen=True, slots=True)
class Delivery:
    """A record of discord.actions in a bot's lane: the action, or why it could not be read."""

    tp: TopicPartition
    record: ConsumerRecord[bytes, bytes]
    action: Action | str


class Runner:
    def __init__(self, settings: Settings, config: RunnerConfig) -> None:
        self.settings = settings
        self.config = config
        namespace = settings.topic_namespace
        self.events_topic = DISCORD_EVENTS.name_in(namespace)
        self.actions_topic = DISCORD_ACTIONS.name_in(namespace)
        self.dead_letter_topic = DEAD_LETTERS[DISCORD_ACTIONS.name].name_in(namespace)
        self.roster: dict[str, RosterEntry] = {}
        self.assigned: set[int] = set()
        self.partitions = 0
        self._credentials: dict[str, BotCredentials] = {}
        # Per partition of discord.actions: which offsets are done, and the last offset committed.
        self._progress: dict[TopicPartition, Watermark] = {}
        self._committed: dict[TopicPartition, int] = {}
        self.lanes: Lanes[Delivery] = Lanes(self._perform, self._performed)
        self._reconcile_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()

    # wiring

    async def run(self) -> None:
        settings, config = self.settings, self.config
        use_api_base(settings.discord_api_base)
        limit_tls_read_buffers()
        self.redis = connect_redis(settings.redis_url)
        self.pool = await asyncpg.create_pool(
            settings.postgres_dsn, min_size=1, max_size=config.decrypt_concurrency
        )
        self.vault_http = httpx.AsyncClient(timeout=10)
        self.vault = TokenVault.from_settings(self.pool, settings, self.vault_http)
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, enable_cleanup_closed=True),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            client_id=f"deep-gateway-{config.runner_id}",
            acks="all",
            linger_ms=5,
            max_batch_size=256 * 1024,
        )
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=f"{settings.topic_namespace}deep-gateways",
            client_id=f"deep-gateway-{config.runner_id}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=config.session_timeout_ms,
            heartbeat_interval_ms=config.heartbeat_interval_ms,
            max_poll_interval_ms=config.max_poll_interval_ms,
            partition_assignment_strategy=(StickyPartitionAssignor,),
        )
        self.rest = RestClients(self.http)
        self.guard = TokenGuard(self.vault, config.actor)
        self.fleet = Fleet(
            http=self.http,
            rest=self.rest,
            producer=self.producer,
            events_topic=self.events_topic,
            sessions=SessionStore(self.redis, settings.topic_namespace),
            identify=IdentifyLimiter(self.redis, settings.topic_namespace),
            gateway_url=settings.discord_gateway_url,
            intents=protocol.intents_value(config.intents),
            on_token_dead=self.guard.revoke,
        )
        self.guard.on_revoked(self.rest.drop)
        self.guard.on_revoked(self.fleet.abandon)
        self.guard.on_revoked(self._forget)
        self.media = media_session(settings.media_allow_private)
        self.performer = ActionPerformer(
            ActionLedger(self.redis, settings.topic_namespace),
            self.rest,
            self.fleet,
            self.media,
            allow_private_media=settings.media_allow_private,
        )
        await self.producer.start()
        try:
            self.consumer.subscribe(
                [self.actions_topic],
                listener=OwnershipListener(
                    self.actions_topic, self._partitions_revoked, self._partitions_assigned
                ),
            )
            await self.consumer.start()
            log.info("runner %s: consuming %s", config.runner_id, self.actions_topic)
            tasks: list[asyncio.Task[Any]] = [
                asyncio.create_task(self._consume(), name="consume-actions"),
                asyncio.create_task(self._reconcile_loop(), name="roster"),
                asyncio.create_task(self.fleet.run(), name="fleet"),
                asyncio.create_task(self._evict_idle(), name="evict-idle"),
            ]
            stop = asyncio.create_task(self._stop.wait(), name="stop")
            done, _ = await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for task in done - {stop}:
                task.result()  # a loop that ended by itself failed: raise it
        finally:
            await self._shutdown()

    def stop(self) -> None:
        self._stop.set()

    async def _shutdown(self) -> None:
        # Actions committed and bots disconnected with their checkpoints before leaving the group, so whoever
        # takes the partitions over starts where this runner stopped.
        await self._let_go(set(self.assigned))
        await self.fleet.close()
        try:
            await self.consumer.stop()
        finally:
            await self.producer.stop()
            await self.http.close()
            await self.media.close()
            await self.vault_http.aclose()
            await self.pool.close()
            await self.redis.aclose()

    # ownership

    async def _partitions_revoked(self, partitions: set[int]) -> None:
        await self._let_go(partitions)

    async def _let_go(self, partitions: set[int]) -> None:
        """Before a rebalance (or a shutdown) takes these partitions: finish or drop their actions and commit,
        then hold their bots (no reconnect, so a bot moving to another runner is never connected twice) and
        write their checkpoints. Eager rebalancing revokes everything, even what comes straight back; whether
        a bot stays is decided on assignment."""
        self.assigned -= partitions
        prefixes = tuple(f"{partition}:" for partition in partitions)
        # What is still waiting after drain_s (a bot held up by a long 429) is redelivered to the next owner.
        await self.lanes.settle(
            [lane for lane in self.lanes.lanes() if lane.startswith(prefixes)], self.config.drain_s
        )
        tps = {tp for tp in self._progress if tp.partition in partitions}
        await self._commit(tps)
        for tp in tps:
            self._progress.pop(tp, None)
            self._committed.pop(tp, None)
        self.fleet.hold(owned(self.fleet.shards, partitions, self.partitions))
        await self.fleet.checkpoint(flush=True)

    async def _partitions_assigned(self, partitions: set[int]) -> None:
        self.partitions = len(self.consumer.partitions_for_topic(self.actions_topic) or ())
        self.assigned = partitions
        log.info(
            "runner %s: assigned partitions %s of %d",
            self.config.runner_id,
            sorted(partitions),
            self.partitions,
        )
        gone = set(self.fleet.shards) - owned(self.fleet.shards, partitions, self.partitions)
        await self._release(gone)
        self.fleet.release_all()
        self._wake.set()

    async def _release(self, bot_ids: set[str]) -> None:
        await self.fleet.disconnect(bot_ids)
        for bot_id in bot_ids:
            self.rest.drop(bot_id)
            self._forget(bot_id)

    def _forget(self, bot_id: str) -> None:
        self._credentials.pop(bot_id, None)

    async def _reconcile_loop(self) -> None:
        while True:
            try:
                self.roster = await load_roster(self.pool)
                await self._reconcile()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                log.exception("runner %s: roster refresh failed; retrying", self.config.runner_id)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.roster_interval_s)

    async def _reconcile(self) -> None:
        async with self._reconcile_lock:
            live = {bot_id for bot_id in self.roster if not self.guard.is_revoked(bot_id)}
            wanted = owned(live, self.assigned, self.partitions)
            await self._release(set(self.fleet.shards) - wanted)
            missing = [bot_id for bot_id in wanted if bot_id not in self.fleet]
            if missing:
                log.info("runner %s: connecting %d bots", self.config.runner_id, len(missing))
            slots = asyncio.Semaphore(self.config.decrypt_concurrency)

            async def connect(bot_id: str) -> None:
                async with slots:
                    bot = await self._bot(bot_id)
                # Ownership may have moved while the token was decrypted.
                if bot is not None and bot_partition(bot_id, self.partitions) in self.assigned:
                    await self.fleet.connect(bot)

            await asyncio.gather(*(connect(bot_id) for bot_id in missing))

    async def _bot(self, bot_id: str) -> BotCredentials | None:
        """The bot's credentials, decrypting its token (audited) the first time; None when it has no usable
        token."""
        bot = self._credentials.get(bot_id)
        if bot is not None:
            return bot
        entry = self.roster.get(bot_id) or await roster_entry(self.pool, bot_id)
        if entry is None or self.guard.is_revoked(bot_id):
            return None
        try:
            token = await self.vault.decrypt_token(entry.token_id, actor=self.config.actor)
        except VaultError as exc:  # revoked meanwhile, gone, or sealed under a key this runner lacks
            log.warning("bot %s: token %s unusable: %s", bot_id, entry.token_id, exc)
            return None
        bot = BotCredentials(bot_id=bot_id, token_id=entry.token_id, token=token, owner_id=entry.owner_id)
        self._credentials[bot_id] = bot
        return bot

    async def _evict_idle(self) -> None:
        while True:
            await asyncio.sleep(min(60.0, self.config.rest_idle_s))
            # A quiet bot's client goes; its next action makes a new one (and relearns the route buckets).
            self.rest.evict_idle(self.config.rest_idle_s)

    # actions

    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        last_commit = loop.time()
        while True:
            batches = await self.consumer.getmany(timeout_ms=500, max_records=self.config.batch_max_records)
            for tp, records in batches.items():
                progress = self._progress.get(tp)
                if progress is None:
                    progress = self._progress[tp] = Watermark(records[0].offset - 1)
                for record in records:
                    progress.received(record.offset)
                    try:
                        action: Action | str = DISCORD_ACTIONS.codec.decode(record.value)
                    except CodecError as exc:
                        action = str(exc)
                    bot_id = action.bot_id if not isinstance(action, str) else ""
                    self.lanes.put(f"{tp.partition}:{bot_id}", Delivery(tp, record, action))
            self._flow_control()
            if loop.time() - last_commit >= COMMIT_INTERVAL_S:
                await self._commit(set(self._progress))
                last_commit = loop.time()

    def _flow_control(self) -> None:
        """Stop fetching while the lanes hold too much, without leaving the group (getmany keeps polling)."""
        assigned = self.consumer.assignment()
        if self.lanes.queued > self.config.max_queued_actions:
            self.consumer.pause(*assigned)
        elif self.lanes.queued < self.config.max_queued_actions // 2 and self.consumer.paused():
            self.consumer.resume(*assigned)

    async def _commit(self, tps: set[TopicPartition]) -> None:
        """Commit, per partition, the offset below which every action is done."""
        offsets = {}
        for tp in tps:
            progress = self._progress.get(tp)
            if progress is not None and progress.value + 1 > self._committed.get(tp, -1):
                offsets[tp] = progress.value + 1
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
            self._committed.update(offsets)
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:
            # The next owner redelivers from the last commit; the ledger skips what was done.
            log.warning("runner %s: commit failed (%s)", self.config.runner_id, exc)

    async def _perform(self, delivery: Delivery) -> None:
        """One action of a bot's lane. Errors of Redis, Kafka or PostgreSQL propagate: the lane retries."""
        try:
            await self._perform_action(delivery)
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception as exc:
            # A bug, or an answer nobody foresaw: never retried forever, never silently dropped.
            log.exception("runner %s: action at %s failed", self.config.runner_id, delivery.record.offset)
            await self._dead_letter(delivery.record, f"unexpected {type(exc).__name__}")

    async def _perform_action(self, delivery: Delivery) -> None:
        record, action = delivery.record, delivery.action
        if isinstance(action, str):
            await self._dead_letter(record, action)
            return
        bot_id = action.bot_id
        if self.guard.is_revoked(bot_id):
            await self._dead_letter(record, f"token of bot {bot_id} is revoked")
            return
        bot = await self._bot(bot_id)
        if bot is None:
            await self._dead_letter(record, f"bot {bot_id} has no usable token with an active deployment")
            return
        outcome = await self.performer.perform(action, bot)
        if outcome.status is Status.TOKEN_DEAD:
            await self.guard.revoke(bot, "revoked_401", outcome.reason)
            await self._dead_letter(record, f"token of bot {bot_id} is revoked: {outcome.reason}")
        elif outcome.status is Status.DEAD:
            log.info("action %s (%s) dead-lettered: %s", action.action_id, action.kind, outcome.reason)
            await self._dead_letter(record, outcome.reason)

    def _performed(self, delivery: Delivery) -> None:
        progress = self._progress.get(delivery.tp)
        if progress is not None:
            progress.done(delivery.record.offset)

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], error: str) -> None:
        """Acknowledged before the offset that drops the record can be committed."""
        letter = dead_letter(record, error, self.config.actor)
        await self.producer.send_and_wait(
            self.dead_letter_topic,
            DEAD_LETTERS[DISCORD_ACTIONS.name].codec.encode(letter),
            key=encode_key(letter.key) if letter.key is not None else None,
        )
