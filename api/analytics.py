"""Asking the sinks process for an owner's analytics: ClickHouse is embedded there (one process may hold
it), so the API puts an OwnerAnalyticsQuery on `analytics.queries` and waits for the answer with its
request id on `analytics.answers`.

Every API replica reads all of `analytics.answers` from its end when it first asks (no consumer group:
each replica must see the answers to its own queries) and keeps the answers it waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from api.errors import BadField, Unavailable
from models.analytics import Bucket, OwnerAnalytics, OwnerAnalyticsAnswer, OwnerAnalyticsQuery
from streams.catalog import ANALYTICS_ANSWERS, ANALYTICS_QUERIES
from streams.codec import CodecError

log = logging.getLogger(__name__)

# ClickHouse answers the console's queries in well under a second; past this the sinks process is down.
ANSWER_TIMEOUT_S = 15.0


def new_request_id() -> str:
    return uuid4().hex


class AnalyticsClient:
    def __init__(self, bootstrap: str, namespace: str, timeout_s: float = ANSWER_TIMEOUT_S) -> None:
        self._bootstrap = bootstrap
        self._queries = ANALYTICS_QUERIES.name_in(namespace)
        self._answers = ANALYTICS_ANSWERS.name_in(namespace)
        self._timeout_s = timeout_s
        self._waiting: dict[str, asyncio.Future[OwnerAnalyticsAnswer]] = {}
        self._started = asyncio.Lock()
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None

    async def _start(self) -> AIOKafkaProducer:
        async with self._started:
            if self._producer is not None:
                return self._producer
            consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False)
            producer = AIOKafkaProducer(bootstrap_servers=self._bootstrap, acks="all")
            try:
                await consumer.start()
                partitions = [TopicPartition(self._answers, p) for p in range(ANALYTICS_ANSWERS.partitions)]
                consumer.assign(partitions)
                await consumer.seek_to_end(*partitions)
                # The positions are fixed before the first query is sent, so its answer is never skipped.
                for partition in partitions:
                    await consumer.position(partition)
                await producer.start()
            except BaseException:
                # Kafka down or the topics missing (a timeout cancels us): the next request starts afresh.
                await consumer.stop()
                await producer.stop()
                raise
            self._consumer, self._producer = consumer, producer
            self._reader = asyncio.create_task(self._read(consumer), name="analytics-answers")
            return producer

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        async for record in consumer:
            try:
                answer = ANALYTICS_ANSWERS.codec.decode(record.value)
            except CodecError as exc:
                log.warning("undecodable analytics answer at offset %s: %s", record.offset, exc)
                continue
            waiting = self._waiting.get(answer.request_id)
            # A redelivered query is answered twice: the first answer is kept.
            if waiting is not None and not waiting.done():
                waiting.set_result(answer)

    async def ask(self, query: OwnerAnalyticsQuery) -> OwnerAnalytics:
        try:
            producer = await asyncio.wait_for(self._start(), self._timeout_s)
        except (TimeoutError, KafkaError):
            raise Unavailable(
                "analytics are unavailable right now (Kafka did not answer); try again later"
            ) from None
        answered: asyncio.Future[OwnerAnalyticsAnswer] = asyncio.get_running_loop().create_future()
        self._waiting[query.request_id] = answered
        try:
            await producer.send_and_wait(
                self._queries, ANALYTICS_QUERIES.codec.encode(query), str(query.owner_id).encode()
            )
            answer = await asyncio.wait_for(answered, self._timeout_s)
        except TimeoutError:
            raise Unavailable(
                "analytics are unavailable right now (the sinks process did not answer); try again later"
            ) from None
        finally:
            del self._waiting[query.request_id]
        if answer.analytics is None:
            raise Unavailable(f"analytics are unavailable right now: {answer.error}")
        return answer.analytics

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()


# The most buckets one answer holds: two weeks of hours, a year and a day of days.
MAX_BUCKETS = 24 * 14
MAX_DAY_BUCKETS = 366
DEFAULT_SPAN = {Bucket.hour: timedelta(hours=24), Bucket.day: timedelta(days=30)}


def analytics_range(
    start: datetime | None, end: datetime | None, bucket: Bucket, now: datetime
) -> tuple[datetime, datetime]:
    """[from, to) of a console chart: `to` defaults to now, `from` to a day (hourly) or 30 days (daily)
    before it; naive times are UTC. A 400 names the field at fault."""
    end = _utc(end) if end is not None else now
    start = _utc(start) if start is not None else end - DEFAULT_SPAN[bucket]
    if start >= end:
        raise BadField("from", "must be before to")
    limit = MAX_BUCKETS if bucket is Bucket.hour else MAX_DAY_BUCKETS
    if (end - start) / bucket.size > limit:
        raise BadField(
            "from", f"spans more than {limit} {bucket.value}s; narrow the range or use a wider bucket"
        )
    return start, end


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
