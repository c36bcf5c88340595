"""Users' data keys in PostgreSQL (vault/user_keys.py): created once whoever asks at the same time, wrapped by
the key ring under an id that names no one, cached per process, and destroyed everywhere at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from infra.migrate import migrate
from models.events import EventEnvelope
from settings import Settings
from streams.sealing import open_envelope, seal_envelope
from tests.processors.factories import envelope, message_data, user
from tests.waiting import wait_until
from vault.keyring import KeyRing, generate_key_spec
from vault.user_keys import UserKeyStore

pytestmark = pytest.mark.stack

KEYS = generate_key_spec("datakeys")


def new_user() -> str:
    return f"7{uuid.uuid4().int % 10**17:017d}"


@pytest.fixture(scope="module")
async def schema_dsn(stack_up: Settings) -> AsyncIterator[str]:
    schema = f"t_keys_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(stack_up.postgres_dsn)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        dsn = f"{stack_up.postgres_dsn}?search_path={schema}"
        await migrate(dsn)
        yield dsn
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


@pytest.fixture
async def stores(schema_dsn: str) -> AsyncIterator[Callable[[], Awaitable[UserKeyStore]]]:
    """`await stores()`: a listening store with a pool of its own, as another process would have."""
    made: list[tuple[UserKeyStore, asyncpg.Pool]] = []

    async def make() -> UserKeyStore:
        pool = await asyncpg.create_pool(schema_dsn, min_size=1, max_size=4)
        store = UserKeyStore(pool, KeyRing.parse(KEYS))
        await store.listen(schema_dsn)
        made.append((store, pool))
        return store

    yield make
    for store, pool in made:
        await store.close()
        await pool.close()


async def test_concurrent_creators_agree_on_one_key_stored_wrapped_under_an_opaque_id(
    stores: Callable[[], Awaitable[UserKeyStore]], schema_dsn: str
) -> None:
    processes: list[UserKeyStore] = [await stores() for _ in range(3)]
    sam = new_user()
    keys = await asyncio.gather(*(store.data_key_for(sam) for store in processes for _ in range(8)))
    assert len({key.key_id for key in keys}) == 1 and len({key.key for key in keys}) == 1
    other = await processes[0].data_key_for(new_user())
    assert other.key_id != keys[0].key_id and other.key != keys[0].key
    conn = await asyncpg.connect(schema_dsn)
    try:
        rows = await conn.fetch("SELECT key_id, wrapped_key FROM user_data_keys WHERE user_id = $1", sam)
    finally:
        await conn.close()
    assert len(rows) == 1
    assert sam not in rows[0]["key_id"] and keys[0].key not in rows[0]["wrapped_key"]
    assert await processes[2].data_key_by_id(rows[0]["key_id"]) == keys[0]


async def test_destroying_is_idempotent_and_every_running_process_stops_opening_at_once(
    stores: Callable[[], Awaitable[UserKeyStore]], schema_dsn: str
) -> None:
    eraser: UserKeyStore = await stores()
    consumer: UserKeyStore = await stores()
    sam, alex = new_user(), new_user()
    channel = "200000000000000002"

    async def sealed_by(author: str) -> EventEnvelope:
        data = message_data(
            guild_id="1", channel_id=channel, author=user(author), content=f"said by {author}"
        )
        return await seal_envelope(envelope("MESSAGE_CREATE", data, bot_id="3", guild_id="1"), eraser)

    sams, alexs = await sealed_by(sam), await sealed_by(alex)
    assert await open_envelope(sams, consumer) is not None
    # The consumer holds the key now: its hot path asks PostgreSQL nothing (a spoiled row changes nothing).
    conn = await asyncpg.connect(schema_dsn)
    try:
        await conn.execute("UPDATE user_data_keys SET wrapped_key = '\\x00' WHERE user_id = $1", sam)
    finally:
        await conn.close()
    assert await open_envelope(sams, consumer) is not None

    opened_after: list[bool] = []

    async def consume() -> None:
        """A running consumer, opening the same event over and over."""
        while True:
            opened_after.append(await open_envelope(sams, consumer) is not None)
            await asyncio.sleep(0.01)

    running = asyncio.create_task(consume())
    try:
        await wait_until(lambda: opened_after, "the consumer to open the event")
        assert await eraser.destroy_user_keys(sam) == 1
        await wait_until(lambda: opened_after[-1] is False, "the consumer to stop opening the event", 10)
    finally:
        running.cancel()
    assert await open_envelope(sams, consumer) is None
    assert sams.sealed is not None and await consumer.data_key_by_id(sams.sealed.key_id) is None
    opened = await open_envelope(alexs, consumer)
    assert opened is not None and opened.data["content"] == f"said by {alex}"
    assert await eraser.destroy_user_keys(sam) == 0
    # A user seen again after erasure gets a new key; what was sealed before stays unreadable.
    assert (await eraser.data_key_for(sam)).key_id != sams.sealed.key_id
    assert await open_envelope(sams, consumer) is None


async def test_a_store_whose_listening_connection_is_lost_reads_uncached_then_listens_and_caches_again(
    stores: Callable[[], Awaitable[UserKeyStore]], schema_dsn: str
) -> None:
    eraser: UserKeyStore = await stores()
    consumer: UserKeyStore = await stores()
    sam, alex = new_user(), new_user()
    sams_key = await eraser.data_key_for(sam)
    assert await consumer.data_key_by_id(sams_key.key_id) == sams_key
    listening = consumer._listener
    conn = await asyncpg.connect(schema_dsn)
    try:
        # The listening connection dies (a database restart, a network cut): the consumer heard nothing
        # while it was gone, so it must not trust its cache until it listens again.
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE query LIKE 'LISTEN %' AND pid <> pg_backend_pid()"
        )
        assert killed >= 1
        await wait_until(
            lambda: consumer._caching and consumer._listener is not listening,
            "the consumer to listen again on a new connection",
            10,
        )
    finally:
        await conn.close()
    assert await consumer.data_key_by_id(sams_key.key_id) == sams_key
    # Listening again: a destruction by another process reaches it.
    alexs_key = await consumer.data_key_for(alex)
    assert await eraser.destroy_user_keys(alex) == 1
    await wait_until(lambda: alexs_key.key_id not in consumer._by_id, "the destruction to be heard", 10)
    assert await consumer.data_key_by_id(alexs_key.key_id) is None


async def test_asking_whether_a_user_holds_a_key_creates_none(
    stores: Callable[[], Awaitable[UserKeyStore]],
) -> None:
    store, someone = await stores(), new_user()
    assert not await store.holds_key(someone)
    assert not await store.holds_key(someone)  # asking made none
    await store.data_key_for(someone)
    assert await store.holds_key(someone)
    await store.destroy_user_keys(someone)
    assert not await store.holds_key(someone)


async def test_prefetching_caches_the_keys_of_ids_in_one_read_and_never_a_destroyed_one(
    stores: Callable[[], Awaitable[UserKeyStore]], schema_dsn: str
) -> None:
    maker: UserKeyStore = await stores()
    consumer: UserKeyStore = await stores()
    sam, alex = new_user(), new_user()
    sams_key, alexs_key = await maker.data_key_for(sam), await maker.data_key_for(alex)
    assert not consumer.cached(sams_key.key_id)
    await consumer.prefetch([sams_key.key_id, alexs_key.key_id, "no-such-key"])
    assert consumer.cached(sams_key.key_id) and consumer.cached(alexs_key.key_id)
    assert not consumer.cached("no-such-key")
    # Cached now: spoiled rows change nothing for the consumer.
    conn = await asyncpg.connect(schema_dsn)
    try:
        await conn.execute(
            "UPDATE user_data_keys SET wrapped_key = '\\x00' WHERE user_id = ANY($1)", [sam, alex]
        )
    finally:
        await conn.close()
    assert await consumer.data_key_for(sam) == sams_key
    assert await consumer.data_key_by_id(sams_key.key_id) == sams_key
    assert await consumer.data_key_for(alex) == alexs_key
    # A destroyed key is dropped from the cache as before, and prefetching it again finds nothing.
    assert await maker.destroy_user_keys(sam) == 1
    await wait_until(lambda: not consumer.cached(sams_key.key_id), "the destruction to be heard", 10)
    await consumer.prefetch([sams_key.key_id])
    assert await consumer.data_key_by_id(sams_key.key_id) is None
