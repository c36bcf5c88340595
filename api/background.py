"""The API process's background work besides the relay: scheduled token health checks, acting on
`tokens.health` (from the checks and from gateway runners) by reassigning a dead token's deployments,
storing `owner.notifications` for owners and operators to read, and persisting the inference workers'
monthly AI-call counts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from api.store import Store, current_period
from inference.quota import MonthlyUsage
from streams.catalog import OWNER_NOTIFICATIONS, TOKENS_HEALTH, TopicSpec
from streams.codec import CodecError
from streams.consumer import AtLeastOnceConsumer, ConsumerOptions, ConsumerService
from streams.sealing import DataKeys, open_payload
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


class TopicApplier(ConsumerService):
    """Applies each record of one topic, one at a time in offset order; applying is idempotent, so what a
    rebalance redelivers changes nothing. A sealed record is applied opened with `keys`, or as its clear part
    holds it when the member it is about was erased (a report is kept without its reporter)."""

    def __init__(
        self,
        spec: TopicSpec,
        apply_one: Callable[[Any], Awaitable[None]],
        name: str,
        store: Store,
        keys: DataKeys,
        bootstrap: str,
        producer: AIOKafkaProducer,
    ) -> None:
        self.spec = spec
        self.apply_one = apply_one
        self.keys = keys
        self.consumer = AtLeastOnceConsumer(
            self,
            [spec],
            namespace=store.namespace,
            bootstrap=bootstrap,
            producer=producer,
            options=ConsumerOptions(
                group_id=f"{store.namespace}deep-api.{name}",
                client_id=f"deep-api-{name}",
                consumer_name="deep-api",
                unit="fetch",
            ),
        )

    async def apply(self, fetched: Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        for tp, records in fetched.items():
            for record in records:
                try:
                    event = self.spec.codec.decode(record.value)
                    event = await open_payload(event, self.spec.sealing, self.keys) or event
                except CodecError as exc:
                    await self.consumer.dead_letter(record, str(exc))
                    continue
                await self.apply_one(event)
            self.consumer.done_below(tp, records[-1].offset + 1)


async def consume_topic(
    spec: TopicSpec,
    apply_one: Callable[[Any], Awaitable[None]],
    name: str,
    store: Store,
    keys: DataKeys,
    bootstrap: str,
    stop: asyncio.Event,
) -> None:
    """Apply every record of `spec` with `apply_one` until `stop`; reconnects after a Kafka error."""
    while not stop.is_set():
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, client_id="deep-api", acks="all")
        applier = TopicApplier(spec, apply_one, name, store, keys, bootstrap, producer)
        stopper = asyncio.create_task(_stop_on(stop, applier.consumer))
        try:
            await producer.start()
            await applier.consumer.start()
            await applier.consumer.run()
        except (KafkaError, OSError) as exc:
            log.warning("%s consumer: %s; reconnecting", spec.name, exc)
            await _sleep(stop, 1.0)
        finally:
            stopper.cancel()
            try:
                await applier.consumer.close()
            finally:
                await producer.stop()


async def consume_token_health(store: Store, keys: DataKeys, bootstrap: str, stop: asyncio.Event) -> None:
    """Apply every tokens.health event to the deployments (reassigning a dead token's) until `stop`."""
    await consume_topic(
        TOKENS_HEALTH, store.tokens.apply_health_event, "token-health", store, keys, bootstrap, stop
    )


async def consume_owner_notifications(
    store: Store, keys: DataKeys, bootstrap: str, stop: asyncio.Event
) -> None:
    """Store every owner notification, opened, for the owner's notification list and the operators, until
    `stop`. The stored copy of a report names its reporter until their erasure redacts it (ops/erasure.py)."""
    await consume_topic(
        OWNER_NOTIFICATIONS, store.notifications.record, "owner-notifications", store, keys, bootstrap, stop
    )


async def _stop_on(stop: asyncio.Event, consumer: AtLeastOnceConsumer) -> None:
    await stop.wait()
    consumer.stop()
