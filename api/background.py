"""The API process's background work besides the relay: scheduled token health checks, acting on
`tokens.health` (from the checks and from gateway runners) by reassigning a dead token's deployments, and
persisting the inference workers' monthly AI-call counts."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from api.store import Store, current_period
from inference.quota import MonthlyUsage
from streams.catalog import TOKENS_HEALTH
from streams.codec import CodecError
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


async def consume_token_health(store: Store, bootstrap: str, stop: asyncio.Event) -> None:
    """Apply every tokens.health event to the deployments (idempotent, so redelivery is harmless)."""
    topic = TOKENS_HEALTH.name_in(store.namespace)
    while not stop.is_set():
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=f"{store.namespace}deep-api.token-health",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        try:
            await consumer.start()
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        try:
                            event = TOKENS_HEALTH.codec.decode(record.value)
                        except CodecError as exc:
                            log.warning("tokens.health offset %s skipped: %s", record.offset, exc)
                            continue
                        await store.tokens.apply_health_event(event)
                if batches:
                    await consumer.commit()
        except (KafkaError, OSError) as exc:
            log.warning("tokens.health consumer: %s; reconnecting", exc)
            await _sleep(stop, 1.0)
        finally:
            await consumer.stop()
