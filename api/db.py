"""The API's PostgreSQL pool and its transactions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
import orjson

T = TypeVar("T")

# A deadlock or serialization failure aborts one of two transactions; running it again is correct.
RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
ATTEMPTS = 3


def _dump_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=_dump_json, decoder=orjson.loads, schema="pg_catalog")
    # asyncpg's own UUID subclass is not serialisable by orjson (the topic codec): use the standard one.
    await conn.set_type_codec("uuid", encoder=str, decoder=UUID, schema="pg_catalog", format="text")


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=_init_connection)
    assert pool is not None
    return pool


async def in_transaction(pool: asyncpg.Pool, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run `work` in one transaction, again if PostgreSQL aborted it for a deadlock."""
    for attempt in range(ATTEMPTS):
        try:
            async with pool.acquire() as conn, conn.transaction():
                return await work(conn)
        except RETRYABLE:
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")
