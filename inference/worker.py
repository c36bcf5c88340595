"""The inference worker: consumes the priority lanes, answers each request once, publishes results.

One aiokafka consumer reads all lanes. Each record becomes a task at once; the tasks meet in the endpoint
pool's priority queue, where a premium request takes the next free slot before any standard or free one
(strict priority exactly where requests contend). A lane stops being fetched while it has
`max_in_flight_per_lane` requests in the worker, so a flood on the free lane never keeps premium records
from being read.

Per request: opening its sealed prompt (a request whose user was erased is dropped), the ledger claim (a
redelivery is answered from the stored result), recalled memories and a factual question's encyclopedia facts
added to the prompt (inference/knowledge.py), the response cache for cacheable prompts, the owner's monthly
quota, then the pool. Over quota, with no endpoint for the model, or when every attempt failed, the result is
a persona fallback (`fallback=True`, no text: the reply processor answers with the offline persona responder)
and the owner hears about it once a month. The result is sealed under the answered user's data key, as the
request was.

At-least-once: an offset is committed only when its result (or dead letter) is acknowledged by Kafka and
every earlier offset of the partition is done too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from inference.cache import ResponseCache
from inference.config import InferenceConfig
from inference.fallback import Fallback, QuotaState, fallback_for
from inference.knowledge import KnowledgeLookup, sourced, with_knowledge
from inference.ledger import RequestLedger
from inference.pool import Completion, EndpointPool, InferenceFailed
from inference.pricing import cost_usd
from inference.quota import Charge, MonthlyUsage, month_of
from memory.recall import Recaller, recalled_notes, with_memories
from models.common import utc_now
from models.decisions import Priority
from models.events import partition_key
from models.inference import InferenceRequest, InferenceResult
from models.operations import OwnerNotice, OwnerNotification
from models.tiers import InferenceLane
from streams.catalog import INFERENCE_LANES, INFERENCE_RESULTS, OWNER_NOTIFICATIONS, TopicSpec
from streams.codec import CodecError
from streams.consumer import AtLeastOnceConsumer, ConsumerOptions, ConsumerService, Fetch
from streams.sealing import DataKeys, open_payload

log = logging.getLogger(__name__)

CONSUMER_NAME = "inference-worker"
LANE_RANK = {InferenceLane.premium: 0, InferenceLane.standard: 1, InferenceLane.free: 2}
PRIORITY_RANK = {Priority.high: 0, Priority.medium: 1, Priority.low: 2}
# A record that keeps failing for a reason other than Redis or Kafka being unavailable is dead-lettered.
HANDLE_ATTEMPTS = 4
MAX_BACKOFF_S = 5.0
# Offsets are committed at most this often (each commit is a round trip to the group coordinator).
COMMIT_INTERVAL_S = 0.2
# How long a rebalance waits for the requests of revoked partitions.
REVOKE_GRACE_S = 10.0
# How often a request whose id another worker holds checks for that worker's result.
CLAIM_POLL_S = 0.25


def rank(lane: InferenceLane, priority: Priority) -> int:
    """Queue rank in the pool: lane first (strict), then the decision's priority within the lane."""
    return LANE_RANK[lane] * len(PRIORITY_RANK) + PRIORITY_RANK[priority]


class InferenceWorker(ConsumerService):
    def __init__(
        self,
        config: InferenceConfig,
        pool: EndpointPool,
        redis: Redis,
        bootstrap: str,
        namespace: str = "",
        group_id: str = "deep-inference",
        lanes: Iterable[InferenceLane] = tuple(InferenceLane),
        *,
        keys: DataKeys,
        recaller: Recaller | None = None,
        knowledge: KnowledgeLookup | None = None,
    ) -> None:
        self.config = config
        self.keys = keys
        self.recaller = recaller
        self.knowledge = knowledge
        self.pool = pool
        self.namespace = namespace
        self.lane_of = {INFERENCE_LANES[lane].name_in(namespace): lane for lane in lanes}
        self.cache = ResponseCache(redis, config.key_prefix, config.cache_ttl_s)
        self.usage = MonthlyUsage(redis, config.key_prefix)
        lease = config.queue_timeout_s + config.max_attempts * (
            config.request_timeout_s + 2 * config.backoff_base_s
        )
        self.ledger = RequestLedger(redis, config.key_prefix, int(lease) + 30, config.result_ttl_s)
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, client_id=f"{group_id}-producer", acks="all"
        )
        limit = config.max_in_flight_per_lane
        self.consumer = AtLeastOnceConsumer(
            self,
            [INFERENCE_LANES[lane] for lane in self.lane_of.values()],
            namespace=namespace,
            bootstrap=bootstrap,
            producer=self.producer,
            options=ConsumerOptions(
                group_id=group_id,
                client_id=f"{group_id}-consumer",
                consumer_name=CONSUMER_NAME,
                instance_id=config.instance_id,
                fetch=Fetch(timeout_s=0.1, max_records=limit),
                commit_interval_s=COMMIT_INTERVAL_S,
                # Each lane is a topic: a lane at its limit stops being fetched, the others go on.
                max_in_flight_per_topic=limit,
                resume_fraction=0.75,
            ),
        )
        # Requests being answered, with the partition each came from.
        self.tasks: dict[asyncio.Task[None], TopicPartition] = {}
        self.failure: BaseException | None = None

    async def start(self) -> None:
        await self.producer.start()
        await self.consumer.start()

    async def run(self) -> None:
        """Consume until stop() is called; raises what made the worker unable to go on."""
        await self.consumer.run()
        if self.failure is not None:
            raise self.failure

    async def stop(self, grace_s: float = 30.0) -> None:
        """Stop fetching, let in-flight requests finish (up to grace_s), commit, close."""
        self.consumer.stop()
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=grace_s)
        for task in set(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(set(self.tasks))
        try:
            await self.consumer.close()
        finally:
            await self.producer.stop()
            await self.pool.close()

    async def apply(self, fetched: Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        for tp, records in fetched.items():
            lane = self.lane_of[tp.topic]
            for record in records:
                task = asyncio.create_task(self._process(tp, lane, record))
                self.tasks[task] = tp
                task.add_done_callback(self._finished)

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        # Let requests of the departing partitions finish (bounded) so their offsets are committed and the
        # new owner does not receive them again; what is still running then is redelivered and answered
        # from the ledger.
        departing = [task for task, tp in self.tasks.items() if tp in partitions]
        if departing:
            await asyncio.wait(departing, timeout=REVOKE_GRACE_S)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.tasks.pop(task, None)
        if not task.cancelled() and task.exception() is not None and self.failure is None:
            self.failure = task.exception()
            self.consumer.stop()

    async def _process(
        self, tp: TopicPartition, lane: InferenceLane, record: ConsumerRecord[bytes, bytes]
    ) -> None:
        await self._handle_with_retries(lane, record)
        self.consumer.done(tp, record.offset)

    async def _handle_with_retries(self, lane: InferenceLane, record: ConsumerRecord[bytes, bytes]) -> None:
        """Retry while Redis or Kafka are unavailable; dead-letter a record failing for any other reason."""
        failures = 0
        while True:
            try:
                await self._handle(lane, record)
                return
            except (RedisError, KafkaError, OSError) as exc:
                log.warning("request at %s:%s waits for infrastructure: %r", record.topic, record.offset, exc)
            except Exception as exc:
                failures += 1
                log.exception("request at %s:%s failed (%d)", record.topic, record.offset, failures)
                if failures >= HANDLE_ATTEMPTS:
                    await self.consumer.dead_letter(record, f"unprocessable: {type(exc).__name__}: {exc}")
                    return
            await asyncio.sleep(min(MAX_BACKOFF_S, 0.2 * 2**failures))

    async def _handle(self, lane: InferenceLane, record: ConsumerRecord[bytes, bytes]) -> None:
        spec = INFERENCE_LANES[lane]
        try:
            request: InferenceRequest | None = await open_payload(
                spec.codec.decode(record.value), spec.sealing, self.keys
            )
        except CodecError as exc:
            await self.consumer.dead_letter(record, str(exc))
            return
        if request is None:
            # The answered user was erased: nothing is generated about them, nor sent.
            log.info("request at %s:%s dropped: its user was erased", record.topic, record.offset)
            return
        encoded = await self._answer(request, lane)
        key = partition_key(request.target.guild_id, request.target.bot_id)
        await self._publish(INFERENCE_RESULTS, key, encoded)

    async def _answer(self, request: InferenceRequest, lane: InferenceLane) -> bytes:
        """The encoded result: generated now, or the stored one of an earlier delivery."""
        started = time.monotonic()
        # The common path (a model call) claims the request and counts the call in one round trip.
        charge = None
        if not request.cacheable and self.pool.serves(request.model):
            charge = self.usage.charge_for(request.owner_id, request.tier, utc_now())
        while True:
            claim = await self.ledger.claim(request.request_id, charge)
            if claim.result is not None:
                return claim.result
            if claim.owned:
                break
            await asyncio.sleep(CLAIM_POLL_S)
        recalled = await self.recaller.memories_for(request) if self.recaller is not None else []
        request = with_memories(request, recalled)
        finding = await self.knowledge.finding_for(request) if self.knowledge is not None else None
        request = with_knowledge(request, finding)
        try:
            result = sourced(await self._generate(request, lane, started, charge, claim.charged), finding)
        except BaseException:
            await self.ledger.release(request.request_id)
            raise
        if recalled:
            result = result.model_copy(update={"recalled": recalled_notes(recalled)})
        encoded = await INFERENCE_RESULTS.sealed_value(result, self.keys)
        await self.ledger.answer(request.request_id, encoded)
        return encoded

    async def _generate(
        self,
        request: InferenceRequest,
        lane: InferenceLane,
        started: float,
        charge: Charge | None,
        charged: bool | None,
    ) -> InferenceResult:
        if request.cacheable:
            hit = await self.cache.get(request)
            if hit is not None:
                return inference_result(request, started, hit, cached=True)
        outcome = await complete_within_quota(
            request, self.pool, self.usage, rank(lane, request.priority), charge, charged
        )
        if isinstance(outcome, Completion):
            if request.cacheable:
                await self.cache.put(request, outcome)
            return inference_result(request, started, outcome)
        if outcome.notice is not None:
            await self._notify_once(request, outcome.notice)
        return inference_result(request, started, None, fallback_reason=outcome.reason)

    async def _notify_once(self, request: InferenceRequest, notice: OwnerNotice) -> None:
        now = utc_now()
        if not await self.usage.first_notice(request.owner_id, notice.kind, now):
            return
        notification = OwnerNotification(
            notification_id=f"{notice.kind}:{request.owner_id}:{month_of(now)}",
            owner_id=request.owner_id,
            kind=notice.kind,
            message=notice.message,
            deployment_id=request.deployment_id,
        )
        await self._publish(
            OWNER_NOTIFICATIONS, str(request.owner_id), OWNER_NOTIFICATIONS.codec.encode(notification)
        )

    async def _publish(self, spec: TopicSpec, key: str, value: bytes) -> None:
        delivery = await self.producer.send(spec.name_in(self.namespace), value, key=key.encode())
        await delivery


async def complete_within_quota(
    request: InferenceRequest,
    pool: EndpointPool,
    usage: MonthlyUsage,
    rank: int,
    charge: Charge | None = None,
    charged: bool | None = None,
) -> Completion | Fallback:
    """The model's completion, counted against the owner's monthly AI calls (refunded when every attempt
    failed), or the persona fallback and why. `charge` and `charged`: the call was counted already."""
    served = pool.serves(request.model)
    if served and charge is None:
        charge = usage.charge_for(request.owner_id, request.tier, utc_now())
        charged = await usage.charge(charge)
    quota = QuotaState(charge.limit, bool(charged)) if charge is not None else None
    fallback = fallback_for(request, endpoint_available=served, quota=quota, at=utc_now())
    if fallback is not None:
        return fallback
    # fallback_for answers None only for a served model, and a served model is charged above.
    assert charge is not None
    try:
        return await pool.complete(request, rank)
    except InferenceFailed as exc:
        await usage.refund(charge)
        log.warning("request %s fell back to the persona: %s", request.request_id, exc)
        return Fallback(str(exc))
    except BaseException:
        await usage.refund(charge)
        raise


def inference_result(
    request: InferenceRequest,
    started: float,
    completion: Completion | None,
    cached: bool = False,
    fallback_reason: str | None = None,
) -> InferenceResult:
    """The result of a completion; with completion None a persona fallback (no text, the reason in error)."""
    if completion is None:
        completion = Completion(
            text="", model=request.model, endpoint="", prompt_tokens=0, completion_tokens=0
        )
    tokens = (completion.prompt_tokens, completion.completion_tokens)
    return InferenceResult(
        request_id=request.request_id,
        event_id=request.event_id,
        deployment_id=request.deployment_id,
        agent_id=request.agent_id,
        owner_id=request.owner_id,
        tier=request.tier,
        lane=request.lane,
        target=request.target,
        text=completion.text,
        model=completion.model,
        endpoint=completion.endpoint,
        prompt_tokens=tokens[0],
        completion_tokens=tokens[1],
        # From taking the request to its result: slot wait, retries and the model call included.
        latency_ms=(time.monotonic() - started) * 1000,
        # A cached answer costs nothing now; its cost was counted when it was generated.
        cost_usd=0.0 if cached else cost_usd(completion.model, *tokens),
        cached=cached,
        fallback=fallback_reason is not None,
        error=fallback_reason[:500] if fallback_reason is not None else None,
    )
