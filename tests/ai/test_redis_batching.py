"""The Redis batcher against the real Redis: concurrent commands share one connection and round trip, each
caller gets its own reply or error, and a Redis that cannot be reached fails every caller instead of
hanging them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, ResponseError

from inference.batching import RedisBatcher
from settings import get_settings


@pytest.fixture
async def named_redis() -> AsyncIterator[tuple[Redis, str]]:
    """A client of the test's own, named so the server's client list shows its connections."""
    name = f"batch-{uuid4().hex[:8]}"
    client = Redis.from_url(get_settings().redis_url, client_name=name)
    yield client, name
    await client.aclose()


async def batcher_connections(client: Redis, name: str) -> list[dict[str, str]]:
    """The named client's connections, less the one asking (CLIENT LIST runs on another of the client's)."""
    return [c for c in await client.client_list() if c.get("name") == name and c.get("cmd") != "client|list"]


@pytest.mark.stack
async def test_concurrent_commands_share_one_connection_and_get_their_own_replies(
    named_redis: tuple[Redis, str], key_prefix: str
) -> None:
    client, name = named_redis
    batcher = RedisBatcher(client)
    keys = [f"{key_prefix}n{i}" for i in range(200)]
    await asyncio.gather(*(batcher.execute("SET", key, i) for i, key in enumerate(keys)))
    replies = await asyncio.gather(*(batcher.execute("INCRBY", key, 1000) for key in keys))
    assert replies == [1000 + i for i in range(200)]
    # Without batching, 200 commands in flight would have opened up to 200 connections.
    assert len(await batcher_connections(client, name)) == 1


@pytest.mark.stack
async def test_a_connection_the_server_dropped_is_replaced(
    named_redis: tuple[Redis, str], key_prefix: str
) -> None:
    client, name = named_redis
    batcher = RedisBatcher(client)
    await batcher.execute("SET", f"{key_prefix}kept", 1)
    (held,) = await batcher_connections(client, name)
    await client.client_kill_filter(_id=held["id"])
    # The batch that meets the dropped connection fails; the next connects afresh.
    with contextlib.suppress(ConnectionError):
        await batcher.execute("GET", f"{key_prefix}kept")
    assert await batcher.execute("GET", f"{key_prefix}kept") == b"1"


@pytest.mark.stack
async def test_an_error_reply_fails_only_its_own_caller(redis: Redis, key_prefix: str) -> None:
    batcher = RedisBatcher(redis)
    await redis.set(f"{key_prefix}text", "not a number")
    replies: list[object] = await asyncio.gather(
        batcher.execute("INCR", f"{key_prefix}counter"),
        batcher.execute("INCR", f"{key_prefix}text"),
        return_exceptions=True,
    )
    counted, wrong = replies
    assert counted == 1
    assert isinstance(wrong, ResponseError) and "not an integer" in str(wrong)


@pytest.mark.stack
async def test_a_cancelled_caller_leaves_the_others_answered(redis: Redis, key_prefix: str) -> None:
    batcher = RedisBatcher(redis)
    cancelled = asyncio.create_task(batcher.execute("SET", f"{key_prefix}a", 1))
    kept = asyncio.create_task(batcher.execute("SET", f"{key_prefix}b", 2))
    cancelled.cancel()
    assert await kept is True
    assert cancelled.cancelled()
    assert await batcher.execute("GET", f"{key_prefix}b") == b"2"


async def test_unreachable_redis_fails_every_caller_and_later_calls_too() -> None:
    # Port 1: nothing listens there, the connection is refused at once.
    unreachable = Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    batcher = RedisBatcher(unreachable)
    try:
        results = await asyncio.gather(
            *(batcher.execute("GET", f"k{i}") for i in range(5)), return_exceptions=True
        )
        assert all(isinstance(result, ConnectionError) for result in results)
        with pytest.raises(ConnectionError):
            await batcher.execute("GET", "again")
    finally:
        await unreachable.aclose()
