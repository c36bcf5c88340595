"""Users' data keys: one random AES-256-GCM key per Discord user, sealing their personal fields in events.

Keys live in PostgreSQL (`user_data_keys`) wrapped by the vault's key ring, under a random key id that names
no one. Destroying a user's key is their crypto-shredding: every event copy sealed under it stops opening.

Each process keeps the keys it uses in an LRU cache, so the hot path makes no database round trip per event.
A destruction is announced with NOTIFY in the transaction that deletes the row, and every process listening
drops its cached copy when it commits. A process caches only while it listens: a store whose listening
connection is lost would miss destructions, so it reads every key from the database (slower, never stale)
until it listens again, which it keeps trying.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import asyncpg

from settings import Settings
from streams.sealing import DATA_KEY_BYTES, DataKey
from vault.keyring import KeyRing, Sealed, load_keyring

log = logging.getLogger(__name__)

# The NOTIFY channel of destructions; its payload is the destroyed key ids, comma-separated.
DESTROYED_CHANNEL = "deep_user_data_keys_destroyed"
# Keys kept per process: 64 bytes of key and two small objects each, a few MB at most.
CACHE_SIZE = 50_000

KEY_COLUMNS = "key_id, wrap_key_id, nonce, wrapped_key"


def _associated_data(key_id: str) -> bytes:
    return b"deep-user-data-key:" + key_id.encode()


class UserKeyStore:
    """Get or create by user, look up by key id, destroy by user; cached per process, destructions heard."""

    def __init__(self, pool: asyncpg.Pool, keyring: KeyRing, *, cache_size: int = CACHE_SIZE) -> None:
        self._pool = pool
        self._keyring = keyring
        self._cache_size = cache_size
        self._by_id: OrderedDict[str, DataKey] = OrderedDict()
        self._by_user: OrderedDict[str, DataKey] = OrderedDict()
        self._user_of: dict[str, str] = {}
        self._listener: asyncpg.Connection | None = None
        self._dsn: str | None = None
        self._relistening: asyncio.Task[None] | None = None
        # Counts destructions seen: a key read from the database before one is not cached after it.
        self._destructions = 0

    @classmethod
    def from_settings(cls, pool: asyncpg.Pool, settings: Settings) -> UserKeyStore:
        return cls(pool, load_keyring(settings))

    async def listen(self, dsn: str) -> None:
        """Follow destructions by any process; caching starts here."""
        self._dsn = dsn
        connection = await asyncpg.connect(dsn)
        await connection.add_listener(DESTROYED_CHANNEL, self._on_destroyed)
        connection.add_termination_listener(self._on_listener_lost)
        self._listener = connection

    async def close(self) -> None:
        listener, self._listener, self._dsn = self._listener, None, None
        if self._relistening is not None:
            self._relistening.cancel()
        self._clear()
        if listener is not None and not listener.is_closed():
            listener.remove_termination_listener(self._on_listener_lost)
            await listener.close()

    # The surface the erasure job and every sealing or opening process use --------------------------------

    async def data_key_for(self, user_id: str) -> DataKey:
        """The user's data key, created on first need; concurrent creators all get the one that was stored."""
        cached = self._by_user.get(user_id)
        if cached is not None and self._caching:
            self._by_user.move_to_end(user_id)
            return cached
        seen = self._destructions
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(f"SELECT {KEY_COLUMNS} FROM user_data_keys WHERE user_id = $1", user_id)
            if row is None:
                row = await self._create(conn, user_id)
        key = self._unwrap(row)
        if self._caching and seen == self._destructions:
            self._remember(user_id, key)
        return key

    def cached(self, key_id: str) -> bool:
        """Whether the key of this id is at hand without a read (never while not caching)."""
        return self._caching and key_id in self._by_id

    async def prefetch(self, key_ids: Iterable[str]) -> None:
        """Cache, in one round trip, the keys of these ids that are not cached yet (a destroyed one is not
        found). A batch of events needs them one after another, and each miss read alone cost a round trip
        awaited by the whole batch. Reads nothing while not caching."""
        if not self._caching:
            return
        missing = [key_id for key_id in set(key_ids) if key_id not in self._by_id]
        if not missing:
            return
        seen = self._destructions
        rows = await self._pool.fetch(
            f"SELECT user_id, {KEY_COLUMNS} FROM user_data_keys WHERE key_id = ANY($1::text[])", missing
        )
        if seen != self._destructions:
            return  # a key read may have been destroyed meanwhile: those rows are not cached
        for row in rows:
            self._remember(row["user_id"], self._unwrap(row))

    async def holds_key(self, user_id: str) -> bool:
        """Whether the user has a data key (none: nothing about them was ever sealed, or they were erased);
        creates none."""
        if user_id in self._by_user and self._caching:
            return True
        held = await self._pool.fetchval("SELECT 1 FROM user_data_keys WHERE user_id = $1", user_id)
        return held is not None

    async def data_key_by_id(self, key_id: str) -> DataKey | None:
        """The data key named by the id, None once destroyed."""
        cached = self._by_id.get(key_id)
        if cached is not None and self._caching:
            self._by_id.move_to_end(key_id)
            return cached
        seen = self._destructions
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                f"SELECT user_id, {KEY_COLUMNS} FROM user_data_keys WHERE key_id = $1", key_id
            )
        if row is None:
            return None
        key = self._unwrap(row)
        if self._caching and seen == self._destructions:
            self._remember(row["user_id"], key)
        return key

    async def destroy_user_keys(self, user_id: str) -> int:
        """Delete the user's data key(s) and tell every listening process to drop its copy; how many were
        destroyed (0 when there were none, as on a repeated erasure)."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch("DELETE FROM user_data_keys WHERE user_id = $1 RETURNING key_id", user_id)
            key_ids = [row["key_id"] for row in rows]
            if key_ids:
                # Delivered when the deletion commits, never before and never without it.
                await conn.execute("SELECT pg_notify($1, $2)", DESTROYED_CHANNEL, ",".join(key_ids))
        self._forget(key_ids)
        return len(key_ids)

    # ------------------------------------------------------------------------------------------------------

    @property
    def _caching(self) -> bool:
        return self._listener is not None and not self._listener.is_closed()

    async def _create(self, conn: asyncpg.Connection, user_id: str) -> asyncpg.Record:
        key_id = secrets.token_urlsafe(18)
        wrapped = self._keyring.wrap(os.urandom(DATA_KEY_BYTES), _associated_data(key_id))
        created = await conn.fetchrow(
            f"""
            INSERT INTO user_data_keys (key_id, user_id, wrap_key_id, nonce, wrapped_key)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (user_id) DO NOTHING
            RETURNING {KEY_COLUMNS}
            """,
            key_id,
            user_id,
            wrapped.key_id,
            wrapped.nonce,
            wrapped.ciphertext,
        )
        if created is not None:
            return created
        # Another process created the user's key at the same moment and committed first: theirs is the key.
        existing = await conn.fetchrow(
            f"SELECT {KEY_COLUMNS} FROM user_data_keys WHERE user_id = $1", user_id
        )
        if existing is None:  # and it was destroyed right after: create afresh
            return await self._create(conn, user_id)
        return existing

    def _unwrap(self, row: asyncpg.Record) -> DataKey:
        key_id = row["key_id"]
        sealed = Sealed(row["wrap_key_id"], row["nonce"], row["wrapped_key"])
        return DataKey(key_id, self._keyring.unwrap(sealed, _associated_data(key_id), f"data key {key_id}"))

    def _remember(self, user_id: str, key: DataKey) -> None:
        self._by_id[key.key_id] = key
        self._by_user[user_id] = key
        self._user_of[key.key_id] = user_id
        while len(self._by_id) > self._cache_size:
            self._drop(next(iter(self._by_id)))

    def _forget(self, key_ids: Iterable[str]) -> None:
        self._destructions += 1
        for key_id in key_ids:
            self._drop(key_id)

    def _drop(self, key_id: str) -> None:
        self._by_id.pop(key_id, None)
        user_id = self._user_of.pop(key_id, None)
        if user_id is not None:
            self._by_user.pop(user_id, None)

    def _clear(self) -> None:
        self._destructions += 1
        self._by_id.clear()
        self._by_user.clear()
        self._user_of.clear()

    def _on_destroyed(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._forget(key_id for key_id in payload.split(",") if key_id)

    def _on_listener_lost(self, _conn: object) -> None:
        log.warning(
            "user data keys: the connection announcing destructions was lost; keys are read uncached until it"
            " is back"
        )
        self._listener = None
        self._clear()
        if self._dsn is not None and self._relistening is None:
            self._relistening = asyncio.get_running_loop().create_task(self._relisten(self._dsn))

    async def _relisten(self, dsn: str) -> None:
        # A destruction announced while no one listened is missed: the cache was cleared at the loss, and
        # caching resumes only once listening again.
        delay_s = 0.5
        try:
            while self._dsn == dsn and self._listener is None:
                try:
                    await self.listen(dsn)
                except (OSError, asyncpg.PostgresError) as exc:
                    log.warning(
                        "user data keys: listening again failed (%s); next try in %.0f s", exc, delay_s
                    )
                    await asyncio.sleep(delay_s)
                    delay_s = min(delay_s * 2, 30.0)
                else:
                    log.info("user data keys: listening for destructions again; caching resumes")
        finally:
            self._relistening = None


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset of a connection given back: a rollback should a transaction be left open (one cut
    short by a cancellation), nothing else. The store's queries leave no other session state (no settings,
    locks, cursors or listeners: its listener has a connection of its own), and asyncpg's full reset is one
    more round trip after every key read."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


@asynccontextmanager
async def user_keys(settings: Settings) -> AsyncIterator[UserKeyStore]:
    """A store with a small pool of its own, listening, for a process that has no pool (processors, sinks,
    memory writer, jobs)."""
    pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=2, reset=_keep_session)
    store = UserKeyStore.from_settings(pool, settings)
    try:
        await store.listen(settings.postgres_dsn)
        yield store
    finally:
        await store.close()
        await pool.close()
