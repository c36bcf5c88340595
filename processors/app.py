"""The Faust app: thin agents that decode records, run the engine over the tables and produce its outputs.

Records are consumed raw and decoded with the catalog's codec, so that a record that cannot be read goes to
the dead-letter topic with the reason and the stream continues. The tables live in memory and recover from
their changelogs on start; every agent that writes tables runs with concurrency 1.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableSet
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from time import monotonic
from typing import Any, cast

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.consumer.subscription_state import Assignment
from faust.tables.manager import TableManager
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_kafka
from faust.types import TP, ChannelT, EventT, Message, StreamT, TopicT
from mode import Service, ServiceT
from yarl import URL

from models.deployments import RoutingRecord
from models.erasure import ErasureAck, ErasureComponent, ErasureControl
from models.events import EventEnvelope
from models.inference import InferenceResult
from models.processor_state import ChangelogRoll
from models.table_keys import AnnouncementKey, GamesKey, MusicKey, RoutingKey, UtilityKey
from processors.compaction import (
    MARKER_KEY,
    ROLLS_TABLE,
    after_erasure,
    after_marker,
    is_due,
    roll_key,
    rolled_partition,
)
from processors.engine import Engine, MalformedEvent, Outputs
from processors.erasure import erase_user, on_partition
from processors.prompt import PromptFit
from processors.table_catalog import PROCESSORS_APP_ID, partition_of
from processors.tables import coalesced_writes, create_tables, model_table
from settings import ProcessorsFlow, Settings
from settings.clock import clock_of
from streams.catalog import (
    AGENT_DECISIONS,
    AGENT_DEPLOYMENTS,
    ANALYTICS_REQUESTS,
    DEAD_LETTERS,
    DISCORD_ACTIONS,
    DISCORD_EVENTS,
    ERASED_WITHIN_MS,
    GUILD_PARTITIONS,
    INFERENCE_LANES,
    INFERENCE_RESULTS,
    MODERATION_AUDIT,
    OWNER_NOTIFICATIONS,
    PRIVACY_ERASURE_ACKS,
    PRIVACY_ERASURES,
    TopicSpec,
)
from streams.codec import CodecError, decode_key, encode_key, key_partitioner
from streams.dead_letters import dead_letter
from streams.history import read_compacted
from streams.sealing import open_payload, sealed_key_ids
from vault.user_keys import UserKeyStore, user_keys

log = logging.getLogger(__name__)

CONSUMER_NAME = "processors"
# Records the consumer delivers to the streams before it lets them run (Faust's drain uses the same).
DELIVERY_YIELD_EVERY = 100


@dataclass(frozen=True)
class WorkerOptions:
    """How one worker runs. Workers with the same app id share the partitions."""

    app_id: str = PROCESSORS_APP_ID
    # None: no web server (several workers on one host need distinct ports otherwise).
    web_port: int | None = None
    # Commit often: every committed offset shortens what a crashed worker processes again.
    commit_interval_s: float = 0.5
    commit_every: int = 1000
    stream_buffer_maxsize: int = 4096
    reminder_interval_s: float = 1.0
    # How often the routines and events timers look for due routines, story-arc beats and event steps.
    routine_interval_s: float = 1.0
    # Static group membership: a worker restarted under the same id gets its partitions back at once
    # instead of after the dead process's session expires. One id per worker; None joins dynamically.
    instance_id: str | None = None
    # How long a silent worker keeps its partitions (Faust's default is a minute).
    session_timeout_s: float = 10.0


class _FetchedAssignment:
    """An aiokafka assignment as its fetcher plans a round of fetches (`tps` and `state_value` are all it
    reads): the partitions not paused, and the paused ones awaiting an offset reset (a seek), which the
    fetcher resets paused or not and whose positions Faust waits for."""

    def __init__(self, assignment: Assignment) -> None:
        state = self.state_value = assignment.state_value
        self.tps = [
            tp
            for tp in assignment.tps
            if not (tp_state := state(tp)).paused or not tp_state.has_valid_position
        ]


class _WorkerConsumerThread(faust_kafka.AIOKafkaConsumerThread):
    """Faust's consumer with the worker's fetch settings, which leaves the partitions Faust paused out of
    aiokafka's fetches, and whose seek back to the committed offsets rewinds a partition with none too.

    Faust hard-codes fetch_max_wait_ms and leaves fetch_min_bytes at aiokafka's default: the consumer it
    builds gets the worker's `ProcessorsFlow` values before it starts (aiokafka reads them at start).

    Faust drops the records it fetched while a rebalance or a table recovery holds its flow, then seeks each
    partition back to its committed offset to read them again; aiokafka seeks only partitions whose committed
    offset is above 0. A partition nobody had committed on kept its position past the dropped records, which
    nobody then decided (a second worker joining lost some in about one run in three). Such a partition goes
    back to where the group's reset policy ("earliest") starts it: records decided and not yet committed are
    decided again, as after any rebalance, rather than never.

    aiokafka's fetcher plans each round of fetches over every assigned partition, and waits on the resume
    future of each paused one: with the worker's ~300 paused changelog partitions a round cost about 1 ms,
    and a worker at 2,500 events/s plans a couple of hundred rounds a second. It plans over the partitions
    it fetches instead (`_FetchedAssignment`), and is woken when the worker resumes some (the only pauses
    are the worker's)."""

    async def on_start(self) -> None:
        await super().on_start()
        fetcher = self._ensure_consumer()._fetcher
        plan = fetcher._get_actions_per_node
        fetcher._get_actions_per_node = lambda assignment: plan(_FetchedAssignment(assignment))

    def _create_worker_consumer(self, transport: faust_kafka.Transport) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        flow = cast(_WorkerTransport, transport).flow
        consumer._fetch_min_bytes = flow.fetch_min_bytes
        consumer._fetch_max_wait_ms = flow.fetch_max_wait_ms
        return consumer

    async def _fetch_records(
        self,
        consumer: AIOKafkaConsumer,
        active_partitions: set[TP],
        timeout: float | None = None,  # noqa: ASYNC109 (Faust's signature)
        max_records: int | None = None,
    ) -> Any:
        self._pause_what_faust_paused(consumer)
        return await super()._fetch_records(consumer, active_partitions, timeout, max_records)

    # Faust's paused partitions and the assignment when they were last passed on to aiokafka.
    _paused_passed_on: tuple[frozenset[TP], frozenset[TopicPartition]] = (frozenset(), frozenset())

    def _pause_what_faust_paused(self, consumer: AIOKafkaConsumer) -> None:
        """Faust pauses the changelogs outside recovery in its own bookkeeping only, and aiokafka went on
        fetching them: every fetch asked for the ~300 changelog partitions besides the ~50 of the streams,
        and brought back the worker's own changelog writes, all decoded and never read. Runs in the
        consumer's thread, before each fetch, so aiokafka's state is touched from its own loop."""
        paused = frozenset(self.consumer._paused_partitions)
        assigned = frozenset(consumer.assignment())
        if (paused, assigned) == self._paused_passed_on:
            return
        wanted = {TopicPartition(tp.topic, tp.partition) for tp in paused} & assigned
        held = consumer.paused()
        consumer.pause(*(wanted - held))
        resumed = held - wanted
        consumer.resume(*resumed)
        self._paused_passed_on = (paused, assigned)
        if resumed:  # the fetcher waits on no paused partition's resumption: the next round fetches them
            fetcher = consumer._fetcher
            fetcher._notify(fetcher._wait_consume_future)

    def verify_event_path(self, now: float, tp: TP) -> None:
        # Faust's livelock check reads each assigned partition's position, which aiokafka asserts is known:
        # a partition just sought back (above, or by a rebalance) has none until its reset is fetched, and
        # the check crashed the worker in that window. Such a partition is moving, not stuck: skip it.
        subscription = self._ensure_consumer()._fetcher._subscriptions.subscription
        assignment = subscription.assignment if subscription is not None else None
        state = assignment.state_value(TopicPartition(tp.topic, tp.partition)) if assignment else None
        if state is not None and state.has_valid_position:
            super().verify_event_path(now, tp)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()
        assigned = self.assignment()
        never = [tp for tp, offset in committed.items() if (offset is None or offset <= 0) and tp in assigned]
        if never:
            await self.seek_to_beginning(*never)
        return committed


class _WorkerConsumer(faust_kafka.Consumer):
    """Faust's consumer, whose drain hands a fetched batch to the streams under one race with the flow's
    suspension rather than one per record.

    Faust's own drain awaits each record's delivery in `wait_first(deliver, suspend_flow.wait())`: four tasks
    and an `asyncio.wait` per record, more CPU than the engine spends deciding a chatter event. A rebalance
    still cuts the delivery short where it did (the rest of the batch is dropped, and read again from the
    committed offsets once the flow resumes)."""

    def _new_consumer_thread(self) -> faust_kafka.AIOKafkaConsumerThread:
        return _WorkerConsumerThread(self, loop=self.loop, beacon=self.beacon)

    # Set when the flow resumes after a rebalance: the drain seeks back to the committed offsets first.
    _seek_before_fetch = False

    def resume_flow(self) -> None:
        # Faust resumes the flow once a rebalance's recovery is done, right after clearing the streams'
        # queues. Fetching restarted before its seek back to the committed offsets, so records delivered
        # meanwhile and not yet taken are gone while the read offsets moved past them (their second read,
        # after the seek, is dropped as already read). Seeking back once more before the next fetch reads
        # what was not committed again: decided twice at worst (deciding a redelivery changes nothing),
        # never lost. (Resuming during the changelogs' recovery is left alone: the stream partitions are
        # paused then, and a seek would move the changelogs' positions being recovered.)
        if not self.app.in_recovery:
            self._seek_before_fetch = True
        super().resume_flow()

    async def _drain_messages(self, fetcher: ServiceT) -> None:
        should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        stopped_errors: tuple[type[BaseException], ...] = (
            *self.consumer_stopped_errors,
            asyncio.CancelledError,
        )
        try:
            while not (should_stop() or fetcher_should_stop()):
                if self._seek_before_fetch:
                    self._seek_before_fetch = False
                    await self.perform_seek()
                self.diag.set_flag(CONSUMER_FETCHING)
                fetched = [message async for _, message in self.getmany(timeout=1.0)]
                # A fetch can return at once time after time: the loop lets the streams run between fetches.
                await self.sleep(0)
                if fetched and not self.should_stop:
                    if self._commit_every is not None and self._n_acked >= self._commit_every:
                        self._n_acked = 0
                        await self.commit()
                    await self.wait_first(self._deliver(fetched), self.suspend_flow.wait())
                self.diag.unset_flag(CONSUMER_FETCHING)
        except stopped_errors:
            if not self.transport.app.should_stop:
                raise

    async def _deliver(self, fetched: list[Message]) -> None:
        """Each record to the streams of its topic, in order, as Faust's drain does: a record at or before the
        partition's last delivered offset (fetched again after a seek) is skipped, and a gap in the offsets
        is recorded so that the offsets after it can be committed. Delivery stops where Faust's fetch stops
        yielding records: once the flow stops or a rebalance begins a new generation (the rest is read again
        from the committed offsets; delivered, it would move the read offsets past them)."""
        for count, message in enumerate(fetched, 1):
            if not self.flow_active or message.generation_id != self.app.consumer_generation_id:
                return
            tp, offset = message.tp, message.offset
            read = self._read_offset[tp]
            if read is not None and offset < read:
                continue
            if read and offset - read > 1 and self.app.topics.acks_enabled_for(message.topic):
                await self._add_gap(tp, read + 1, offset)
            await self.callback(message)
            self._read_offset[tp] = offset
            # Delivery rarely waits: the streams get their turn every so many records.
            if count % DELIVERY_YIELD_EVERY == 0:
                await asyncio.sleep(0)


class _WorkerTransport(faust_kafka.Transport):
    Consumer = _WorkerConsumer

    def __init__(self, url: list[URL], app: faust.App, flow: ProcessorsFlow) -> None:
        super().__init__(url, app)
        self.flow = flow


class _WorkerTableManager(TableManager):
    """Faust's table manager waits a fixed second as it starts, for tables an app declares while starting.
    This worker's tables are all declared when its app is made (`create_tables`): it goes straight on, a
    second sooner on every start and restart."""

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


class RoutingSeed:
    """The deployments topic as it stood when the worker started: the latest raw record per key.

    The deployments agent and the events agent consume different topics, so on a cold start (or a replay
    under a new app id) an event could be processed before its guild's configuration. The seed, read before
    the worker starts, closes that gap: the first time a key is routed, a seeded record newer than the
    table's is applied first. Records published later arrive through the deployments agent."""

    def __init__(self, latest: dict[str, bytes | None]) -> None:
        self._latest = latest

    def take(self, key: str) -> RoutingRecord | None:
        raw = self._latest.pop(key, None)
        if raw is None:
            return None
        try:
            record = AGENT_DEPLOYMENTS.codec.decode(raw)
        except CodecError:
            return None  # the deployments agent dead-letters it
        return record if record.key == key else None


async def event_batches(
    app: faust.App, stream: StreamT, batch_max: int, wait_s: float
) -> AsyncIterator[list[EventT]]:
    """The stream's events in batches of up to `batch_max`, a batch waiting at most `wait_s` after its first
    event for more, taken straight from the queue the consumer fills; the caller acks them after the batch.
    Ends when the stream stops.

    Faust's own `take_events` passes every event through the stream's machinery first (a drainer task,
    sensors, processors, the current event's bookkeeping), at about the CPU the engine spends deciding a
    chatter event. What of it matters is kept: an event fetched before the latest rebalance (of an older
    consumer generation) is acked unhandled, as the stream skips it; a handled one is tracked as unacked, so
    that a rebalance waits for its batch before its partition moves; and the stall detector sees the
    partition's stream taking events."""
    # Iterating the agent's topic registers it with the conductor, which then fills its queue.
    queue = cast(ChannelT[Any], aiter(stream.channel)).queue
    unacked = cast(MutableSet[Message], app.consumer.unacked)
    acking_topics = app.topics.acking_topics
    inbound = app.monitor.stream_inbound_time
    while True:
        try:
            received = await _take(queue, batch_max, wait_s)
        except StopAsyncIteration:  # how Faust ends a channel's iteration when the stream stops
            return
        events: list[EventT] = []
        taken_at = monotonic()
        for event in received:
            message = event.message
            if not app.flow_control.is_active() or message.generation_id != app.consumer_generation_id:
                event.ack()
                continue
            if message.topic in acking_topics and not message.tracked:
                message.tracked = True
                unacked.add(message)
            inbound[message.tp] = taken_at
            events.append(event)
        if events:
            yield events


class DeliveredAcks:
    """Acks a stream's batches once Kafka has every record their handling wrote (changelog records, outputs,
    dead letters), in the order they were taken.

    Faust commits the acked offsets after flushing its producer, and the flush does not tell a record Kafka
    refused (for good, or expired in the producer's buffer through a broker outage) from one it took: acked
    as soon as handled, events whose writes were lost counted as done. And Faust commits past one unacked
    offset at the head of acked ones, so no batch is acked before an earlier one. Once a batch's records are
    refused the worker stops, that batch and the later ones unacked: it restarts from the committed offsets
    and its tables from their changelogs, and handles those events again."""

    def __init__(self, app: faust.App) -> None:
        self._app = app
        self._waiting: deque[tuple[list[EventT], asyncio.Future[Any] | None]] = deque()
        self._refused: BaseException | None = None
        # The worker's crash, scheduled once: a task the loop holds no reference to may be collected.
        self._crash: asyncio.Task[None] | None = None

    def once_delivered(self, events: list[EventT], deliveries: list[Awaitable[Any]]) -> None:
        if self._refused is not None:
            self._forget(events)
            return
        delivered = asyncio.gather(*deliveries) if deliveries else None
        self._waiting.append((events, delivered))
        if delivered is not None:
            delivered.add_done_callback(lambda _: self._ack_delivered())
        self._ack_delivered()

    def _ack_delivered(self) -> None:
        while self._waiting and self._refused is None:
            events, delivered = self._waiting[0]
            if delivered is not None and not delivered.done():
                return
            self._waiting.popleft()
            refused = _refusal(delivered)
            if refused is None:
                for event in events:
                    event.ack()
            else:
                self._stop(events, refused)

    def _stop(self, events: list[EventT], refused: BaseException) -> None:
        self._refused = refused
        self._forget(events)
        while self._waiting:
            self._forget(self._waiting.popleft()[0])
        self._crash = stop_worker(self._app, refused, f"{len(events)} events, left unacknowledged")

    def _forget(self, events: list[EventT]) -> None:
        # Neither acked nor waited for: the worker's stop (and a rebalance) waits until the unacked are.
        unacked = cast(MutableSet[Message], self._app.consumer.unacked)
        for event in events:
            unacked.discard(event.message)


def stop_worker(app: faust.App, refused: BaseException, written_for: str) -> asyncio.Task[None]:
    """Stops the worker for records Kafka did not take: restarted, it reads its tables from the changelogs
    and what it had not saved from the committed offsets, and handles it again. (The caller holds the task:
    one the loop holds no reference to may be collected.)"""
    log.critical("Kafka did not take the records written for %s (%r): the worker stops", written_for, refused)
    return asyncio.ensure_future(app.crash(refused))


async def kafka_answers(sending: Awaitable[list[Awaitable[Any]]]) -> list[Awaitable[Any]]:
    """Kafka's answers for the records `sending` sends. Should sending itself fail (a record the producer
    would not take, or any error past the records' own handling), that is one more refused answer: the
    worker stops rather than go on with state whose writes may be lost."""
    try:
        return await sending
    except Exception as error:
        failed = asyncio.get_running_loop().create_future()
        failed.set_exception(error)
        return [failed]


async def refusal_of(answers: list[Awaitable[Any]]) -> BaseException | None:
    """Why Kafka refused one of these records, once it answered them all; None when it took them all."""
    try:
        await asyncio.gather(*answers)
    except Exception as error:
        return error
    return None


def _refusal(delivered: asyncio.Future[Any] | None) -> BaseException | None:
    if delivered is None:
        return None
    if delivered.cancelled():
        return asyncio.CancelledError("a delivery was cancelled")
    return delivered.exception()


async def _take(queue: asyncio.Queue[EventT], most: int, wait_s: float) -> list[EventT]:
    """The next event, and those that follow it within `wait_s`, `most` in all."""
    taken = [await queue.get()]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while len(taken) < most:
        if not queue.empty():
            taken.append(queue.get_nowait())
            continue
        try:
            taken.append(await asyncio.wait_for(queue.get(), deadline - loop.time()))
        except TimeoutError:
            break
    return taken


def create_app(settings: Settings, options: WorkerOptions, seed: RoutingSeed | None = None) -> faust.App:
    namespace = settings.topic_namespace
    # Faust keeps a per-app directory (default: "<app id>-data" in the working directory) and creates only
    # its last level.
    faust_dir = settings.state_dir / "faust"
    faust_dir.mkdir(parents=True, exist_ok=True)
    flow = settings.processors_flow
    app = faust.App(
        f"{namespace}{options.app_id}",
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        topic_partitions=GUILD_PARTITIONS,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=options.web_port is not None,
        web_port=options.web_port or 6066,
        producer_linger=flow.producer.linger_ms / 1000,
        producer_max_batch_size=flow.producer.max_batch_bytes,
        producer_partitioner=key_partitioner,
        broker_commit_interval=options.commit_interval_s,
        broker_commit_every=options.commit_every,
        stream_buffer_maxsize=options.stream_buffer_maxsize,
        consumer_auto_offset_reset="earliest",
        consumer_group_instance_id=options.instance_id,
        broker_session_timeout=options.session_timeout_s,
        autodiscover=False,
        datadir=str(faust_dir / "{conf.name}"),
        TableManager=_WorkerTableManager,
    )

    app.transport = _WorkerTransport(app.conf.broker_consumer, app, flow)

    def topic(spec: TopicSpec) -> TopicT:
        return app.topic(
            spec.name_in(namespace), key_type=bytes, value_type=bytes, partitions=spec.partitions
        )

    events, deployments, results = topic(DISCORD_EVENTS), topic(AGENT_DEPLOYMENTS), topic(INFERENCE_RESULTS)
    consumed = (DISCORD_EVENTS, AGENT_DEPLOYMENTS, INFERENCE_RESULTS, PRIVACY_ERASURES)
    dead_letters = {spec.name: topic(DEAD_LETTERS[spec.name]) for spec in consumed}
    fit = PromptFit.small if settings.local_model_serves else PromptFit.full
    engine = Engine(create_tables(app), seed.take if seed is not None else None, fit)
    # The engine's tables are written by one agent's batch or one timer's firing at a time. A firing's
    # writes wait for its outputs to reach Kafka; a batch writing the same key meanwhile would send them
    # with its own, recording the firing made before its outputs are.
    engine_turn = asyncio.Lock()
    # The stops of the worker that a timer began, for records Kafka refused.
    stops: list[asyncio.Task[None]] = []
    clock = clock_of(settings.clock_file)

    # The topics of the engine's outputs by catalog name, as the producer names them.
    output_topics = {
        spec.name: spec.name_in(namespace)
        for spec in (
            DISCORD_ACTIONS,
            AGENT_DECISIONS,
            MODERATION_AUDIT,
            ANALYTICS_REQUESTS,
            OWNER_NOTIFICATIONS,
            *INFERENCE_LANES.values(),
        )
    }

    # The worker's data keys, for opening what it consumes and sealing what it produces: opened by a task at
    # start and held until the worker stops; agents and timers wait for them.
    held_keys: list[UserKeyStore] = []
    keys_opened = asyncio.Event()

    @app.task
    async def hold_data_keys() -> None:
        async with user_keys(settings) as keys:
            held_keys.append(keys)
            keys_opened.set()
            await asyncio.Event().wait()  # until the worker stops and cancels its tasks

    async def data_keys() -> UserKeyStore:
        await keys_opened.wait()
        return held_keys[0]

    async def publish(key: str, outputs: Outputs) -> list[Awaitable[Any]]:
        """The outputs sealed and sent; Kafka's answers for them."""
        return await send_sealed(await outputs.records(key, await data_keys()))

    async def send_sealed(records: list[tuple[TopicSpec, str, bytes]]) -> list[Awaitable[Any]]:
        """Sent straight to the producer, as the changelog batches are (Faust's topic path costs more than the
        send); Kafka's answers for them."""
        return [
            await app.producer.send(output_topics[spec.name], encode_key(record_key), value, None, None, None)
            for spec, record_key, value in records
        ]

    async def send_dead_letter(spec: TopicSpec, message: Message, error: str) -> Awaitable[Any]:
        letter = dead_letter(message, error, CONSUMER_NAME)
        log.warning("dead letter from %s[%d]@%d: %s", message.topic, message.partition, message.offset, error)
        return await dead_letters[spec.name].send(
            key=message.key, value=DEAD_LETTERS[spec.name].codec.encode(letter)
        )

    async def consume(
        spec: TopicSpec,
        stream: StreamT,
        handle: Callable[[str, Any], Awaitable[Outputs]],
        tombstone: Callable[[str], None] | None = None,
        batch_max: int = 1,
        prepare: Callable[[list[Any]], Awaitable[None]] | None = None,
    ) -> None:
        """Run `handle(key, value)` per record, in order, and publish its outputs; a record that fails for any
        reason goes to the dead letters and the stream goes on. Records come in batches of up to
        `batch_max`, whose values `prepare` sees first: the batch's table writes reach the changelogs once
        per key at its end, and its events are acked once Kafka acknowledged every record their handling
        wrote (`DeliveredAcks`). (A batch of one is handled as it arrives.) A failure past the records' own
        handling, such as a record the producer would not take, stops the worker with the batch unacked."""

        async def handle_batch(events: list[EventT], values: list[Any]) -> list[Awaitable[Any]]:
            deliveries: list[Awaitable[Any]] = []
            async with engine_turn, coalesced_writes(app.producer) as batch:
                if recovered():
                    # Before the first record after a rebalance, as before a timer's first firing: an event
                    # may read what the engine derives (the economy's index of wallet holders) before a
                    # timer comes round.
                    forget_derived_after_rebalance()
                for event, value in zip(events, values, strict=True):
                    batch.partition = event.message.partition
                    deliveries += await consume_one(spec, event.message, value, handle, tombstone)
            return [*deliveries, *batch.deliveries]

        acks = DeliveredAcks(app)
        async for events in event_batches(app, stream, batch_max, flow.batch_wait_ms / 1000):
            values = [read(spec, event.message) for event in events]
            if prepare is not None:
                await prepare([value for value in values if not isinstance(value, CodecError)])
            acks.once_delivered(events, await kafka_answers(handle_batch(events, values)))

    def read(spec: TopicSpec, message: Message) -> Any:
        """The record's value, or the CodecError saying why it cannot be read."""
        try:
            return spec.codec.decode(message.value)
        except CodecError as error:
            return error

    async def consume_one(
        spec: TopicSpec,
        message: Message,
        value: Any,
        handle: Callable[[str, Any], Awaitable[Outputs]],
        tombstone: Callable[[str], None] | None,
    ) -> list[Awaitable[Any]]:
        """Kafka's answers for the records the record's handling sent."""
        key = decode_key(message.key) or ""
        try:
            if message.value is None and tombstone is not None:
                tombstone(key)
                return []
            if isinstance(value, CodecError):
                raise value
            # Publishing is the record's too: outputs that cannot be sealed (a data key this worker's key ring
            # cannot open) raised past here would crash the agent, its batch left unacknowledged for good and
            # the worker unable to stop.
            return await publish(key, await handle(key, value))
        except (CodecError, MalformedEvent) as error:
            return [await send_dead_letter(spec, message, str(error))]
        except Exception as error:  # one bad record must not stop its partition
            log.exception("failed on %s[%d]@%d", message.topic, message.partition, message.offset)
            return [await send_dead_letter(spec, message, f"{type(error).__name__}: {error}")]

    async def apply_routing(key: str, record: RoutingRecord) -> Outputs:
        if record.key != key:
            raise ValueError(f"key: a record for {record.key!r} arrived under {key!r}")
        return engine.deploy(record)

    @app.agent(deployments, name="deployments")
    async def on_deployments(stream: StreamT) -> None:
        await consume(AGENT_DEPLOYMENTS, stream, apply_routing, tombstone=engine.remove_routing)

    async def handle_event(_key: str, envelope: EventEnvelope) -> Outputs:
        opened = await engine.opened_for(envelope, await data_keys())
        return engine.handle_event(opened) if opened is not None else Outputs()

    async def prefetch_data_keys(envelopes: list[EventEnvelope]) -> None:
        """Reads the data keys that open the batch's events, those not cached in one round trip (the answers
        are sealed under the same users' keys). Only an event with a key to read is asked whether it
        concerns an agent here (it is asked again when handled): most keys are cached, and asking costs
        more than the rest of the prefetch. Should the read fail, each event reads its own, as it would
        have."""
        store = await data_keys()
        key_ids: list[str] = []
        for envelope in envelopes:
            missing = [key_id for key_id in sealed_key_ids(envelope) if not store.cached(key_id)]
            if missing and engine.concerns(envelope):
                key_ids += missing
        try:
            await store.prefetch(key_ids)
        except Exception as error:  # the events' own reads report a lasting failure
            log.warning("prefetching a batch's data keys failed: %s", error)

    @app.agent(events, name="events")
    async def on_events(stream: StreamT) -> None:
        # Only the events come in numbers: configuration and inference results are handled as each arrives,
        # so a configuration change reaches the events after it as soon as it did unbatched.
        await consume(
            DISCORD_EVENTS, stream, handle_event, batch_max=flow.batch_max_events, prepare=prefetch_data_keys
        )

    async def handle_result(key: str, result: InferenceResult) -> Outputs:
        opened = await open_payload(result, INFERENCE_RESULTS.sealing, await data_keys())
        # The answered user was erased meanwhile: their answer is not sent.
        return engine.handle_result(opened, key) if opened is not None else Outputs()

    @app.agent(results, name="results")
    async def on_results(stream: StreamT) -> None:
        await consume(INFERENCE_RESULTS, stream, handle_result)

    erasures, erasure_acks = topic(PRIVACY_ERASURES), topic(PRIVACY_ERASURE_ACKS)
    # The compaction markers pending per partition (processors/compaction.py), and the changelogs they go to.
    rolls = model_table(app, ROLLS_TABLE, ChangelogRoll)
    marked_changelogs = [table for table in app.tables.values() if table.name != ROLLS_TABLE]
    erased_within = timedelta(milliseconds=ERASED_WITHIN_MS)

    async def record_roll(partition: int) -> list[Awaitable[Any]]:
        """The partition's markers, due `erased_within` after the erasure's writes reached the broker (the
        broker's roll counts from their timestamps, hence the real time, not the worker's clock); Kafka's
        answer for the record. Recorded on every control record: one redelivered after a crash that lost the
        record erases nothing more, yet still gets its markers."""
        key = roll_key(partition)
        async with coalesced_writes(app.producer) as batch:
            batch.partition = partition
            rolls[key] = after_erasure(rolls.get(key), datetime.now(UTC), erased_within)
        return batch.deliveries

    async def erase(message: Message) -> list[Awaitable[Any]]:
        """The control record's user erased from the partition's tables and the erasure acknowledged; Kafka's
        answers for the records written."""
        try:
            control: ErasureControl = PRIVACY_ERASURES.codec.decode(message.value)
        except CodecError as error:
            return [await send_dead_letter(PRIVACY_ERASURES, message, str(error))]
        async with engine_turn, coalesced_writes(app.producer) as batch:
            batch.partition = message.partition
            removed = erase_user(engine.tables, control.user_id, on_partition(message.partition))
        # The acknowledgement says the user is gone from the partition's changelogs: only once Kafka has
        # every write that removed them (refused, this raises and the worker stops, the erasure unacked).
        await asyncio.gather(*batch.deliveries)
        rolled = await record_roll(message.partition)
        ack = ErasureAck(
            erasure_id=control.erasure_id,
            component=ErasureComponent.processors,
            partition=message.partition,
            removed=removed,
        )
        acked = await erasure_acks.send(
            key=encode_key(str(control.erasure_id)), value=PRIVACY_ERASURE_ACKS.codec.encode(ack)
        )
        return [*rolled, acked]

    @app.agent(erasures, name="erasures")
    async def on_erasures(stream: StreamT) -> None:
        # Co-partitioned with the events: the record on partition p reaches the worker holding p's tables,
        # and its writes go to p's changelogs. Erasing is idempotent, so a redelivery only acknowledges again.
        acks = DeliveredAcks(app)
        async for events in event_batches(app, stream, 1, 0.0):
            acks.once_delivered(events, await kafka_answers(erase(events[0].message)))

    def owned_partitions() -> set[int]:
        """The guild partitions this worker actively owns (standby copies are not its to act on)."""
        events_name = events.get_topic_name()
        return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == events_name}

    async def fire_owned(partition_keys: list[str], fire: Callable[[str, datetime], Outputs]) -> None:
        """A timer's `fire(key, now)` for each partition key this worker owns, its outputs published. A key
        whose firing fails (outputs that cannot be sealed: a data key this worker's key ring cannot open) is
        logged and the others fire: raised out of the timer, the error would stop the worker and every
        agent on it.

        A firing's outputs reach Kafka before the table writes that record it was made. Should Kafka refuse
        them, the writes are not sent and the worker stops: restarted, it fires again from the changelogs,
        with the same ids, which the gateway performs once."""
        owned = owned_partitions()
        now = clock()
        for key in partition_keys:
            partition = partition_of(key)
            if partition not in owned:
                continue
            try:
                async with engine_turn, coalesced_writes(app.producer) as batch:
                    batch.partition = partition
                    records = await fire(key, now).records(key, await data_keys())
                    refused = await refusal_of(await kafka_answers(send_sealed(records)))
                    if refused is not None:
                        batch.abandon()
            except Exception:
                log.exception("a timer's firing failed on %s", key)
                continue
            if refused is not None:
                stops.append(stop_worker(app, refused, f"a timer's firing on {key}"))
                return

    @app.timer(interval=options.reminder_interval_s)
    async def fire_reminders() -> None:
        keys = [UtilityKey.parse(raw).partition_key for raw in list(engine.tables.utility.keys())]
        await fire_owned(keys, engine.fire_reminders)

    @app.timer(interval=options.reminder_interval_s)
    async def end_idle_games() -> None:
        keys = [GamesKey.parse(raw).partition_key for raw in list(engine.tables.games.keys())]
        await fire_owned(keys, engine.end_idle_games)

    def recovered() -> bool:
        """The tables hold all their changelogs say: before, a timer could act on state a later record
        changes (a routine's marker, an announcement already posted)."""
        recovery = cast(TableManager, app.tables).recovery
        return not (app.rebalancing or app.in_recovery or not recovery.completed.is_set())

    # The rebalance what the engine derived from the tables (wake-up times, met orders, wallet holders) was
    # derived in.
    derived_rebalance = [app.rebalancing_count]

    def forget_derived_after_rebalance() -> None:
        """Keys may have been another worker's meanwhile, their state changed where this one saw nothing."""
        if derived_rebalance[0] != app.rebalancing_count:
            engine.forget_derived()
            derived_rebalance[0] = app.rebalancing_count

    @app.timer(interval=options.routine_interval_s)
    async def fire_routines() -> None:
        # Each firing's marker reaches the changelog only once Kafka has its outputs (`fire_owned`); a firing
        # a crash leaves unmarked is made again with the same ids, which the gateway performs once.
        if not recovered():
            return
        forget_derived_after_rebalance()
        keys = [RoutingKey.parse(raw).partition_key for raw in list(engine.tables.routing.keys())]
        await fire_owned(keys, engine.fire_routines)

    @app.timer(interval=options.reminder_interval_s)
    async def fire_announcements() -> None:
        # As for routines: the book loses the announcement in the write that makes its message.
        if not recovered():
            return
        keys = [AnnouncementKey.parse(raw).partition_key for raw in list(engine.tables.announcements.keys())]
        await fire_owned(keys, engine.fire_announcements)

    @app.timer(interval=options.reminder_interval_s)
    async def send_compaction_markers() -> None:
        # As for routines: only once recovered, and only on the partitions this worker owns (a partition
        # taken over brings its pending markers in the table).
        if not recovered():
            return
        owned = owned_partitions()
        for key, pending in list(rolls.items()):
            partition = rolled_partition(key)
            if partition not in owned or not is_due(pending, datetime.now(UTC)):
                continue
            # Straight to the producer, as every other changelog record is; the roll is recorded only once
            # Kafka has every marker (refused, the worker stops and sends them again once restarted).
            markers = [
                await app.producer.send(
                    table.changelog_topic_name, MARKER_KEY.encode(), None, partition, None, None
                )
                for table in marked_changelogs
            ]
            refused = await refusal_of(markers)
            if refused is not None:
                stops.append(stop_worker(app, refused, f"the compaction markers of partition {partition}"))
                return
            following = after_marker(pending, datetime.now(UTC), erased_within)
            async with coalesced_writes(app.producer) as batch:
                batch.partition = partition
                if following is None:
                    del rolls[key]
                else:
                    rolls[key] = following

    @app.timer(interval=options.reminder_interval_s)
    async def leave_idle_voice() -> None:
        # As for routines: the player's idle time lives in the music table, written with the leave.
        if not recovered():
            return
        keys = list(
            dict.fromkeys(MusicKey.parse(raw).partition_key for raw in list(engine.tables.music.keys()))
        )
        await fire_owned(keys, engine.leave_idle_voice)

    @app.timer(interval=options.routine_interval_s)
    async def host_events() -> None:
        # As for routines: each step is recorded in the events table in the write that makes its outputs.
        if not recovered():
            return
        forget_derived_after_rebalance()
        keys = [RoutingKey.parse(raw).partition_key for raw in list(engine.tables.routing.keys())]
        await fire_owned(keys, engine.fire_events)

    return app


async def read_routing_seed(settings: Settings) -> RoutingSeed:
    topic = AGENT_DEPLOYMENTS.name_in(settings.topic_namespace)
    partitions = set(range(AGENT_DEPLOYMENTS.partitions))
    return RoutingSeed(await read_compacted(settings.kafka_bootstrap, topic, partitions))
