"""The transactional outbox and its relay to Kafka.

Every change writes its announcements as outbox rows in the SAME transaction as the change (`stage`):
a crash before commit loses both, a crash after commit loses neither. The relay publishes unpublished
rows in id order with an idempotent producer, waits for the broker's ack, then marks them published.
A crash between ack and mark re-publishes those rows after a restart. That is harmless: every value
carries a per-key version (RoutingRecord.version), and consumers ignore a record whose version is not
newer than the one they hold, so each change is applied exactly once from a consumer's point of view,
in order.

Order: writers of one routing key are serialised by the key's version row (see api/routing_records.py), so
per key, outbox ids grow with versions; one relay per outbox (an advisory lock; others wait as
standbys) publishes in id order, and one key always lands on one partition. A trigger NOTIFYs at
commit, so the relay publishes within milliseconds; a short poll covers a missed notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from streams.catalog import TopicSpec
from streams.codec import encode_key

log = logging.getLogger(__name__)

# Under the broker's default message.max.bytes (1 MiB), with room for headers and the batch.
MAX_VALUE_BYTES = 900_000
RETENTION_S = 24 * 3600
CLEANUP_EVERY_S = 600.0


class OutboxValueTooLarge(ValueError):
    pass


async def stage(conn: asyncpg.Connection, spec: TopicSpec, namespace: str, key: str, value: Any) -> None:
    """Queue `value` for `spec`'s topic inside the caller's transaction."""
    encoded = spec.codec.encode(value)
    if len(encoded) > MAX_VALUE_BYTES:
        raise OutboxValueTooLarge(
            f"the {spec.name} record for key {key} would be {len(encoded)} bytes, over {MAX_VALUE_BYTES}"
        )
    await conn.execute(
        "INSERT INTO outbox (topic, key, value) VALUES ($1, $2, $3)",
        spec.name_in(namespace),
        encode_key(key),
        encoded,
    )


async def unpublished_count(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"))


async def publish_batch(
    conn: asyncpg.Connection,
    producer: AIOKafkaProducer,
    batch_size: int,
    *,
    crash_after_publish: bool = False,
) -> int:
    """Publish the oldest unpublished rows, wait for every ack, then mark them. Returns how many."""
    rows = await conn.fetch(
        "SELECT id, topic, key, value FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1", batch_size
    )
    if not rows:
        return 0
    # send() only enqueues, in order; the idempotent producer keeps that order per partition on retries.
    acks = [await producer.send(row["topic"], value=row["value"], key=row["key"]) for row in rows]
    await asyncio.gather(*acks)
    if crash_after_publish:
        # Test hook: die like a SIGKILL exactly between the broker's ack and the mark.
        os.kill(os.getpid(), signal.SIGKILL)
    await conn.execute(
        "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])", [row["id"] for row in rows]
    )
    return len(rows)


async def _wait(events: list[asyncio.Event], seconds: float) -> None:
    """Until any of the events is set, or `seconds` pass."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _relay_session(
    dsn: str,
    bootstrap: str,
    stop: asyncio.Event,
    *,
    batch_size: int,
    poll_interval_s: float,
    crash_after_publish: bool,
) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        schema = await conn.fetchval("SELECT current_schema()")
        # Advisory locks are per database; the schema in the key gives each outbox its own relay.
        lock_key = await conn.fetchval("SELECT hashtextextended($1, 0)", f"{schema}.outbox-relay")
        wake = asyncio.Event()
        await conn.add_listener(f"{schema}.outbox", lambda *_: wake.set())
        while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_key):
            await _wait([stop], poll_interval_s)
            if stop.is_set():
                return
        log.info("outbox relay: publishing the outbox of schema %s", schema)
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", client_id="deep-outbox-relay"
        )
        await producer.start()
        try:
            last_cleanup = 0.0
            loop = asyncio.get_running_loop()
            while not stop.is_set():
                wake.clear()
                published = await publish_batch(
                    conn, producer, batch_size, crash_after_publish=crash_after_publish
                )
                if loop.time() - last_cleanup > CLEANUP_EVERY_S:
                    await conn.execute(
                        "DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1)",
                        float(RETENTION_S),
                    )
                    last_cleanup = loop.time()
                if published < batch_size:
                    await _wait([wake, stop], poll_interval_s)
        finally:
            await producer.stop()
    finally:
        # Closing the session releases the advisory lock for a standby.
        with contextlib.suppress(Exception):
            await conn.close()


async def run_relay(
    dsn: str,
    bootstrap: str,
    *,
    stop: asyncio.Event | None = None,
    batch_size: int = 500,
    poll_interval_s: float = 0.5,
    crash_after_publish: bool = False,
) -> None:
    """Publish the outbox until `stop` is set, reconnecting after database or broker failures."""
    stop = stop or asyncio.Event()
    backoff = 0.5
    while not stop.is_set():
        try:
            await _relay_session(
                dsn,
                bootstrap,
                stop,
                batch_size=batch_size,
                poll_interval_s=poll_interval_s,
                crash_after_publish=crash_after_publish,
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, KafkaError) as exc:
            log.warning("outbox relay: %s: %s; retrying in %.1f s", type(exc).__name__, exc, backoff)
            await _wait([stop], backoff)
            backoff = min(backoff * 2, 10.0)
        else:
            backoff = 0.5
