"""The API process's background work besides the relay: scheduled token health checks, acting on
`tokens.health` (from the checks and from gateway runners) by reassigning a dead token's deployments, and
persisting the inference workers' monthly AI-call counts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from api.store import Store, current_period
from inference.quota import MonthlyUsage
from streams.catalog import TOKENS_HEALTH
from streams.codec import CodecError
from streams.consumer import AtLeastOnceConsumer, ConsumerOptions, ConsumerService
from vault.errors import VaultError
from vault.store import TokenVault

log = logging.getLogger(__name__)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def run_health_checks(vault: TokenVault, stop: asyncio.Event, *, interval_s: float = 60.0) -> None:
    """Check every due token (premium every 10 minutes, others every 5). Status changes go to tokens.health
    through the outbox."""
    while not stop.is_set():
        try:
            for token_id in await vault.claim_due():
                try:
                    await vault.check_health(token_id)
                except VaultError as exc:
                    log.warning("health check of token %s: %s", token_id, exc)
        except OSError as exc:
            log.warning("health checks: %s", exc)
        await _sleep(stop, interval_s)


async def persist_usage(store: Store, usage: MonthlyUsage) -> int:
    """Copy this month's AI-call counts from Redis into usage_counters; returns how many owners."""
    period = current_period()
    counts = await usage.month_counts(period)
    await store.usage.record(period, counts)
    return len(counts)


async def run_usage_persistence(
    store: Store, usage: MonthlyUsage, stop: asyncio.Event, *, interval_s: float = 60.0
) -> None:
    """Persist the counts every `interval_s`: Redis keeps them 40 days, PostgreSQL keeps them for billing."""
    while not stop.is_set():
        try:
            await persist_usage(store, usage)
        except (OSError, RedisError) as exc:
            log.warning("persisting usage: %r", exc)
        await _sleep(stop, interval_s)


class TokenHealthApplier(ConsumerService):
    """Applies tokens.health events to the deployments, one at a time in offset order; the applying is
    idempotent, so what a rebalance redelivers changes nothing."""

    def __init__(self, store: Store, bootstrap: str, producer: AIOKafkaProducer) -> None:
        self.store = store
        self.consumer = AtLeastOnceConsumer(
            self,
            [TOKENS_HEALTH],
            namespace=store.namespace,
            bootstrap=bootstrap,
            producer=producer,
            options=ConsumerOptions(
                group_id=f"{store.namespace}deep-api.token-health",
                client_id="deep-api-token-health",
                consumer_name="deep-api",
                unit="fetch",
            ),
        )

    async def apply(self, fetched: Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        for tp, records in fetched.items():
            for record in records:
                try:
                    event = TOKENS_HEALTH.codec.decode(record.value)
                except CodecError as exc:
                    await self.consumer.dead_letter(record, str(exc))
                    continue
                await self.store.tokens.apply_health_event(event)
            self.consumer.done_below(tp, records[-1].offset + 1)


async def consume_token_health(store: Store, bootstrap: str, stop: asyncio.Event) -> None:
    """Apply every tokens.health event to the deployments until `stop`; reconnects after a Kafka error."""
    while not stop.is_set():
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, client_id="deep-api", acks="all")
        applier = TokenHealthApplier(store, bootstrap, producer)
        stopper = asyncio.create_task(_stop_on(stop, applier.consumer))
        try:
            await producer.start()
            await applier.consumer.start()
            await applier.consumer.run()
        except (KafkaError, OSError) as exc:
            log.warning("tokens.health consumer: %s; reconnecting", exc)
            await _sleep(stop, 1.0)
        finally:
            stopper.cancel()
            try:
                await applier.consumer.close()
            finally:
                await producer.stop()


async def _stop_on(stop: asyncio.Event, consumer: AtLeastOnceConsumer) -> None:
    await stop.wait()
    consumer.stop()
