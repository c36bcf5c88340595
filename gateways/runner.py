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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import discord
import httpx
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from gateways import protocol
from gateways.actions import RestCall
from gateways.autocomplete import Autocompleter, MusicLibrary
from gateways.commands import CommandRegistry, DeployedConfigs
from gateways.deferrals import Deferrals
from gateways.fleet import Fleet, limit_tls_read_buffers
from gateways.identify import IdentifyLimiter
from gateways.intents import record_message_content
from gateways.interactions_http import VerifyKeys
from gateways.lanes import Lanes
from gateways.ledger import ActionLedger
from gateways.media import media_session
from gateways.ownership import bot_partition, owned
from gateways.perform import ActionPerformer, Status
from gateways.rest import RestClients, use_api_base
from gateways.roster import RosterEntry, load_roster, roster_entry
from gateways.sessions import SessionStore, connect_redis
from gateways.shard import BotCredentials
from gateways.tokens import TokenGuard
from gateways.voice.manager import VoiceManager
from gateways.voice.speech import Speech
from gateways.voice.store import VoiceStore
from models.actions import Action
from models.events import EventEnvelope
from settings import Settings
from streams.catalog import DISCORD_ACTIONS, DISCORD_EVENT_MAX_BYTES, DISCORD_EVENTS
from streams.codec import CodecError, encode_key, key_partitioner
from streams.consumer import AtLeastOnceConsumer, ConsumerOptions, ConsumerService, Fetch
from streams.sealing import open_payload, seal_envelope
from vault.errors import VaultError
from vault.store import TokenVault
from vault.user_keys import UserKeyStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunnerConfig:
    runner_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    # Static group membership: a runner restarted under the same id takes its partitions straight back,
    # without waiting out the dead process's session. One id per runner; None joins dynamically.
    instance_id: str | None = None
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
    # A slash command not answered this long after it arrived is deferred: Discord's window is 3 s.
    interaction_defer_s: float = 1.5

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


class Runner(ConsumerService):
    def __init__(self, settings: Settings, config: RunnerConfig) -> None:
        self.settings = settings
        self.config = config
        namespace = settings.topic_namespace
        self.events_topic = DISCORD_EVENTS.name_in(namespace)
        self.actions_topic = DISCORD_ACTIONS.name_in(namespace)
        self.roster: dict[str, RosterEntry] = {}
        self.assigned: set[int] = set()
        self.partitions = 0
        self._credentials: dict[str, BotCredentials] = {}
        # bot id -> whether it has MESSAGE_CONTENT, as last stored: an unchanged state is not written again.
        self._message_content: dict[str, bool] = {}
        self.lanes: Lanes[Delivery] = Lanes(self._perform, self._performed)
        self._reconcile_lock = asyncio.Lock()
        # Bots whose application's interactions endpoint this runner has made what the settings say.
        self._endpoint_settled: set[str] = set()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()

    # wiring

    def _interaction_received(self, bot: BotCredentials, interaction: dict[str, Any]) -> None:
        """Slash commands are watched for their 3 s deadline; autocomplete requests are answered here."""
        self.deferrals.received(bot, interaction)
        self.autocompleter.received(bot, interaction)

    async def _publish_event(self, envelope: EventEnvelope) -> None:
        """An event of the edge's own (a voice track's end, a transcript) on `discord.events`, its personal
        fields sealed under their user's key."""
        sealed = await seal_envelope(envelope, self.user_keys)
        await self.producer.send_and_wait(
            self.events_topic, DISCORD_EVENTS.codec.encode(sealed), key=encode_key(envelope.key)
        )

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
        self.user_keys = UserKeyStore.from_settings(self.pool, settings)
        await self.user_keys.listen(settings.postgres_dsn)
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, enable_cleanup_closed=True),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            client_id=f"deep-gateway-{config.runner_id}",
            acks="all",
            # The fleet holds events for the linger and hands them over together (gateways/forwarder.py).
            linger_ms=0,
            max_batch_size=settings.gateway_producer.max_batch_bytes,
            max_request_size=DISCORD_EVENT_MAX_BYTES,
            partitioner=key_partitioner,
        )
        self.actions = AtLeastOnceConsumer(
            self,
            [DISCORD_ACTIONS],
            namespace=settings.topic_namespace,
            bootstrap=settings.kafka_bootstrap,
            producer=self.producer,
            options=ConsumerOptions(
                group_id=f"{settings.topic_namespace}deep-gateways",
                client_id=f"deep-gateway-{config.runner_id}",
                consumer_name=config.actor,
                instance_id=config.instance_id,
                fetch=Fetch(timeout_s=0.5, max_records=config.batch_max_records),
                commit_interval_s=COMMIT_INTERVAL_S,
                # Fetching pauses while the lanes hold too much, without leaving the group.
                max_in_flight_per_topic=config.max_queued_actions,
                resume_fraction=0.5,
                session_timeout_ms=config.session_timeout_ms,
                heartbeat_interval_ms=config.heartbeat_interval_ms,
                max_poll_interval_ms=config.max_poll_interval_ms,
                sticky=True,
            ),
        )
        self.rest = RestClients(self.http)
        self.deferrals = Deferrals(self.rest, config.interaction_defer_s)
        self.autocompleter = Autocompleter(self.rest, MusicLibrary(settings.music_library_dir))
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
            keys=self.user_keys,
            linger_s=settings.gateway_producer.linger_ms / 1000,
            on_interaction=self._interaction_received,
            on_intents=self._intents_learned,
        )
        self.commands = CommandRegistry(self.redis, settings.topic_namespace, self.rest)
        self.verify_keys = VerifyKeys(self.redis, settings.topic_namespace)
        self.deployed = DeployedConfigs()
        self.guard.on_revoked(self.rest.drop)
        self.guard.on_revoked(self.fleet.abandon)
        self.guard.on_revoked(self._forget)
        self.media = media_session(settings.media_allow_private)
        self.voice = VoiceManager(
            fleet=self.fleet,
            http=self.http,
            gateway_url=settings.discord_gateway_url,
            library_root=settings.music_library_dir,
            media=self.media,
            allow_private_media=settings.media_allow_private,
            speech=Speech.from_settings(settings.elevenlabs_url, settings.elevenlabs_api_key),
            publish=self._publish_event,
            store=VoiceStore(self.redis, settings.topic_namespace),
        )
        self.fleet.on_voice = self.voice.dispatched
        self.performer = ActionPerformer(
            ActionLedger(self.redis, settings.topic_namespace),
            self.rest,
            self.fleet,
            self.deferrals,
            self.media,
            self.voice,
            allow_private_media=settings.media_allow_private,
        )
        await self.producer.start()
        try:
            await self.actions.start()
            log.info("runner %s: consuming %s", config.runner_id, self.actions_topic)
            tasks: list[asyncio.Task[Any]] = [
                asyncio.create_task(self.actions.run(), name="consume-actions"),
                asyncio.create_task(self._reconcile_loop(), name="roster"),
                asyncio.create_task(self.fleet.run(), name="fleet"),
                asyncio.create_task(self.voice.run(), name="voice"),
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
        await self.voice.close()
        await self.fleet.close()
        try:
            await self.actions.close()
        finally:
            await self.producer.stop()
            await self.http.close()
            await self.media.close()
            await self.vault_http.aclose()
            await self.user_keys.close()
            await self.pool.close()
            await self.redis.aclose()

    # ownership

    def _partitions(self, tps: set[TopicPartition]) -> set[int]:
        return {tp.partition for tp in tps if tp.topic == self.actions_topic}

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        await self._let_go(self._partitions(partitions))

    async def _let_go(self, partitions: set[int]) -> None:
        """Before a rebalance (or a shutdown) takes these partitions: finish or drop their actions (what is
        done is committed after), hold their bots (no reconnect, so a bot moving to another runner is never
        connected twice) and write their checkpoints. Eager rebalancing revokes everything, even what comes
        straight back; whether a bot stays is decided on assignment."""
        self.assigned -= partitions
        prefixes = tuple(f"{partition}:" for partition in partitions)
        # What is still waiting after drain_s (a bot held up by a long 429) is redelivered to the next owner.
        await self.lanes.settle(
            [lane for lane in self.lanes.lanes() if lane.startswith(prefixes)], self.config.drain_s
        )
        self.fleet.hold(owned(self.fleet.shards, partitions, self.partitions))
        await self.fleet.checkpoint(flush=True)

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        partitions = self._partitions(assigned)
        self.partitions = self.actions.partition_count(self.actions_topic)
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
        await self.voice.release(bot_ids)
        await self.fleet.disconnect(bot_ids)
        for bot_id in bot_ids:
            self.rest.drop(bot_id)
            self._forget(bot_id)

    def _forget(self, bot_id: str) -> None:
        self._credentials.pop(bot_id, None)
        self._message_content.pop(bot_id, None)
        self._endpoint_settled.discard(bot_id)
        self.commands.forget(bot_id)

    async def _intents_learned(self, bot: BotCredentials, intents: int) -> None:
        if not self.fleet.intents & protocol.MESSAGE_CONTENT:
            return  # not asked for: nothing is missing
        granted = bool(intents & protocol.MESSAGE_CONTENT)
        if self._message_content.get(bot.bot_id) == granted:
            return
        try:
            await record_message_content(self.pool, self.settings.topic_namespace, bot, granted)
        except Exception:
            # The bot connects either way (a shard must not die of this); its next connection records it.
            log.exception("bot %s: recording its MESSAGE_CONTENT intent failed", bot.bot_id)
            return
        self._message_content[bot.bot_id] = granted

    async def _reconcile_loop(self) -> None:
        while True:
            try:
                self.roster = await load_roster(self.pool)
                await self._reconcile()
                await self._register_commands()
                await self._use_interactions_endpoint()
            except (*INFRASTRUCTURE_ERRORS, aiohttp.ClientError):
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
                if bot is None or bot_partition(bot_id, self.partitions) not in self.assigned:
                    return
                if await self.fleet.connect(bot):
                    # Its voice channels, if an earlier owner had it in any: rejoined, the track goes on.
                    self.voice.restore_soon(bot)

            await asyncio.gather(*(connect(bot_id) for bot_id in missing))

    async def _register_commands(self) -> None:
        """Each connected bot's slash commands, registered where its deployments' set changed."""
        bots = [self._credentials[bot_id] for bot_id in self.fleet.shards if bot_id in self._credentials]
        wanted = await self.deployed.wanted(self.pool, [bot.bot_id for bot in bots])
        await self.commands.sync_all(bots, wanted)

    async def _use_interactions_endpoint(self) -> None:
        """Each connected bot's application sends its interactions to the receiver when one is configured;
        its public key goes to Redis first, as the receiver needs it to answer Discord's verifying PING.
        Without a receiver, a bot once pointed at one (its key is still published) goes back to the
        gateway: left set, its commands would go to a receiver no longer running."""
        base = self.settings.interactions_url
        for bot_id in set(self.fleet.shards) - self._endpoint_settled:
            bot = self._credentials.get(bot_id)
            if bot is None:
                continue
            client = self.rest.client(bot_id, bot.token)
            url = f"{base}/{bot_id}" if base else None
            try:
                if url is not None:
                    application = await client.request(RestCall("GET", "/applications/@me"))
                    await self.verify_keys.publish(bot_id, str(application["verify_key"]))
                    if application.get("interactions_endpoint_url") != url:
                        await client.request(self._endpoint_call(url))
                elif await self.verify_keys.get(bot_id) is not None:
                    await client.request(self._endpoint_call(None))
                    await self.verify_keys.forget(bot_id)
            except discord.HTTPException as exc:
                # Retried on the next roster round; meanwhile the gateway keeps delivering.
                log.warning("bot %s: interactions endpoint %s not set: %s", bot_id, url, exc)
                continue
            self._endpoint_settled.add(bot_id)

    @staticmethod
    def _endpoint_call(url: str | None) -> RestCall:
        return RestCall("PATCH", "/applications/@me", body={"interactions_endpoint_url": url})

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

    async def apply(self, fetched: Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        for tp, records in fetched.items():
            for record in records:
                try:
                    action: Action | str = DISCORD_ACTIONS.codec.decode(record.value)
                except CodecError as exc:
                    action = str(exc)
                bot_id = action.bot_id if not isinstance(action, str) else ""
                self.lanes.put(f"{tp.partition}:{bot_id}", Delivery(tp, record, action))

    async def _perform(self, delivery: Delivery) -> None:
        """One action of a bot's lane. Errors of Redis, Kafka or PostgreSQL propagate: the lane retries."""
        try:
            await self._perform_action(delivery)
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception as exc:
            # A bug, or an answer nobody foresaw: never retried forever, never silently dropped.
            log.exception("runner %s: action at %s failed", self.config.runner_id, delivery.record.offset)
            await self.actions.dead_letter(delivery.record, f"unexpected {type(exc).__name__}")

    async def _perform_action(self, delivery: Delivery) -> None:
        record, action = delivery.record, delivery.action
        if isinstance(action, str):
            await self.actions.dead_letter(record, action)
            return
        try:
            opened = await open_payload(action, DISCORD_ACTIONS.sealing, self.user_keys)
        except CodecError as exc:
            await self.actions.dead_letter(record, str(exc))
            return
        if opened is None:
            # It would speak of, or act on, a member who was erased: not performed, nothing of it logged.
            log.info("action %s (%s) not performed: its member was erased", action.action_id, action.kind)
            return
        action = opened
        bot_id = action.bot_id
        if self.guard.is_revoked(bot_id):
            await self.actions.dead_letter(record, f"token of bot {bot_id} is revoked")
            return
        bot = await self._bot(bot_id)
        if bot is None:
            await self.actions.dead_letter(
                record, f"bot {bot_id} has no usable token with an active deployment"
            )
            return
        outcome = await self.performer.perform(action, bot)
        if outcome.status is Status.TOKEN_DEAD:
            await self.guard.revoke(bot, "revoked_401", outcome.reason)
            await self.actions.dead_letter(record, f"token of bot {bot_id} is revoked: {outcome.reason}")
        elif outcome.status is Status.DEAD:
            log.info("action %s (%s) dead-lettered: %s", action.action_id, action.kind, outcome.reason)
            await self.actions.dead_letter(record, outcome.reason)

    def _performed(self, delivery: Delivery) -> None:
        self.actions.done(delivery.tp, delivery.record.offset)
