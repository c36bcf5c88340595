"""Export of discord.events to Parquet by day and import back onto a topic: lossless, each key in order;
members' words only from the guilds whose owners enabled it."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from jobs.parquet import (
    StoredEvent,
    content_export_guilds,
    events_table,
    export_events,
    exported,
    exported_sealed,
    import_events,
    table_envelopes,
)
from jobs.timeline import TimeWindow, to_ms
from models.events import EventEnvelope
from settings import Settings
from streams.admin import apply_catalog, delete_namespace
from streams.catalog import DISCORD_EVENTS
from streams.sealing import open_envelope, seal_envelope
from tests.data_keys import MemoryDataKeys
from tests.jobs.factories import BOT_A, GUILD_A, GUILD_B, insert_deployment, message, read_records

# Yesterday's midnight (UTC): the events straddle two days and stay within the topic's retention.
MIDNIGHT = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
PLUS_TWO = timezone(timedelta(hours=2))


def history() -> list[EventEnvelope]:
    """Events around midnight in two guilds and a DM, some received with a UTC offset or none; guild B's
    clock runs backwards across midnight, so its order is not the order of its received times."""
    events = []
    for n in range(24):
        at = MIDNIGHT + timedelta(milliseconds=100 * (n - 12))
        if n % 6 == 5:
            events.append(message(n, at, guild_id=None, bot_id=BOT_A, channel_id="4300000000000000003"))
        elif n % 2:
            events.append(message(n, at.astimezone(PLUS_TWO), guild_id=GUILD_A, bot_id=BOT_A, channel_id="1"))
        else:
            backwards = MIDNIGHT - timedelta(milliseconds=100 * (n - 12))
            events.append(message(n, backwards, guild_id=GUILD_B, bot_id=BOT_A, channel_id="2"))
    events.append(message(99, MIDNIGHT.replace(tzinfo=None), guild_id=GUILD_A, bot_id=BOT_A, channel_id="1"))
    return events


def received_ms(envelope: EventEnvelope) -> int:
    at = envelope.received_at
    return to_ms(at if at.tzinfo is not None else at.replace(tzinfo=UTC))


async def values_by_key(settings: Settings, topic: str) -> dict[str, list[bytes]]:
    """Every value of a topic by key, in offset order."""
    by_key: dict[str, list[bytes]] = defaultdict(list)
    for record in await read_records(settings.kafka_bootstrap, topic):
        by_key[(record.key or b"").decode()].append(record.value or b"")
    return by_key


def test_rows_convert_back_to_identical_envelopes() -> None:
    events = history()
    table = events_table([StoredEvent(e, 0, n) for n, e in enumerate(events)])
    assert set(table.column("day").to_pylist()) == {
        (MIDNIGHT - timedelta(days=1)).date().isoformat(),
        MIDNIGHT.date().isoformat(),
    }
    codec = DISCORD_EVENTS.codec
    assert [codec.encode(e) for e in table_envelopes(table)] == [codec.encode(e) for e in events]


@pytest.mark.stack
async def test_export_and_import_round_trip_is_lossless(
    stack_up: Settings, namespace: str, producer: AIOKafkaProducer, tmp_path: Path
) -> None:
    events = history()
    source = DISCORD_EVENTS.name_in(namespace)
    for envelope in events:
        value = DISCORD_EVENTS.codec.encode(envelope)
        await producer.send(source, value, key=envelope.key.encode(), timestamp_ms=received_ms(envelope))
    await producer.send(source, b"\xff not an envelope", key=b"x", timestamp_ms=to_ms(MIDNIGHT))
    outside = message(100, MIDNIGHT + timedelta(hours=3), guild_id=GUILD_A, bot_id=BOT_A, channel_id="1")
    await producer.send(
        source, DISCORD_EVENTS.codec.encode(outside), key=b"x", timestamp_ms=received_ms(outside)
    )
    await producer.flush()

    window = TimeWindow(MIDNIGHT - timedelta(minutes=5), MIDNIGHT + timedelta(minutes=5))
    content_guilds = frozenset({GUILD_A})
    keys = MemoryDataKeys()
    report = await export_events(
        stack_up.kafka_bootstrap, namespace, window, tmp_path / "events", keys, content_guilds=content_guilds
    )
    assert (report.rows, report.unreadable) == (len(events), 1)
    days = sorted(path.name for path in (tmp_path / "events").iterdir())
    assert days == [f"day={(MIDNIGHT - timedelta(days=1)).date()}", f"day={MIDNIGHT.date()}"]
    with pytest.raises(FileExistsError):
        await export_events(stack_up.kafka_bootstrap, namespace, window, tmp_path / "events", keys)

    target = f"{namespace}imported."
    await apply_catalog(stack_up.kafka_bootstrap, target, (DISCORD_EVENTS,))
    try:
        assert await import_events(stack_up.kafka_bootstrap, target, tmp_path / "events") == len(events)
        imported = await values_by_key(stack_up, DISCORD_EVENTS.name_in(target))
    finally:
        await delete_namespace(stack_up.kafka_bootstrap, target)
    expected: dict[str, list[bytes]] = defaultdict(list)
    for envelope in events:
        expected[envelope.key].append(DISCORD_EVENTS.codec.encode(exported(envelope, content_guilds)))
    assert imported == expected
    # Guild A's words came back; guild B's and the DMs' never left.
    words = {DISCORD_EVENTS.codec.decode(value).data["content"] for value in imported[GUILD_A]}
    assert all(word.startswith("just saying something") for word in words)
    others = [value for key, values in imported.items() if key != GUILD_A for value in values]
    assert others and {DISCORD_EVENTS.codec.decode(value).data["content"] for value in others} == {""}


def test_an_export_holds_no_words_outside_the_guilds_that_enabled_it() -> None:
    said = message(1, MIDNIGHT, guild_id=GUILD_A, bot_id=BOT_A, channel_id="1", content="my secret")
    data = {
        **said.data,
        "embeds": [{"description": "my secret"}],
        "attachments": [{"filename": "secret.png"}],
        "referenced_message": {"id": "9", "content": "my earlier secret"},
        "interaction_metadata": {"options": [{"name": "q", "value": "my secret question"}]},
    }
    envelope = said.model_copy(update={"data": data})
    assert exported(envelope, frozenset({GUILD_A})) == envelope
    redacted = exported(envelope, frozenset({GUILD_B}))
    assert "secret" not in redacted.model_dump_json()
    assert (redacted.data["id"], redacted.data["author"], redacted.data["content"]) == (
        data["id"],
        data["author"],
        "",
    )
    direct = message(2, MIDNIGHT, guild_id=None, bot_id=BOT_A, channel_id="3", content="my secret")
    assert exported(direct, frozenset({GUILD_A, GUILD_B})).data["content"] == ""


async def test_a_sealed_event_is_exported_still_sealed_without_the_words_it_may_not_carry() -> None:
    keys = MemoryDataKeys()
    said = message(1, MIDNIGHT, guild_id=GUILD_A, bot_id=BOT_A, channel_id="1", content="my secret")
    sealed = await seal_envelope(said, keys)
    assert await exported_sealed(sealed, frozenset({GUILD_A}), keys) == sealed
    redacted = await exported_sealed(sealed, frozenset({GUILD_B}), keys)
    assert redacted.sealed is not None and "secret" not in redacted.model_dump_json()
    opened = await open_envelope(redacted, keys)
    assert opened is not None
    assert (opened.data["content"], opened.data["author"]) == ("", said.data["author"])
    assert list(table_envelopes(events_table([StoredEvent(redacted, 0, 0)]))) == [redacted]
    # Its author erased: what an export may still hold of it is the clear part.
    keys.destroy(said.data["author"]["id"])
    erased = await exported_sealed(sealed, frozenset({GUILD_B}), keys)
    assert erased.sealed is None and erased.data == sealed.data


@pytest.mark.stack
async def test_content_is_exported_only_where_every_owner_in_the_guild_enabled_it(pg_dsn: str) -> None:
    guilds = [f"42000000000000000{n}" for n in range(3)]
    conn = await asyncpg.connect(pg_dsn)
    try:
        # Guild 0: one owner, enabled. Guild 1: two owners, one enabled. Guild 2: one owner, never asked.
        for guild in (guilds[0], guilds[1], guilds[1], guilds[2]):
            await insert_deployment(conn, uuid4(), guild_id=guild)
        enabling = await conn.fetch(
            "SELECT DISTINCT ON (d.guild_id) c.owner_id FROM agent_deployments d JOIN agent_configurations c "
            "USING (config_id) WHERE d.guild_id = ANY($1) ORDER BY d.guild_id, d.deployed_at",
            guilds[:2],
        )
        await conn.execute(
            "UPDATE owners SET content_exports = true WHERE owner_id = ANY($1)", [r[0] for r in enabling]
        )
    finally:
        await conn.close()
    assert await content_export_guilds(pg_dsn) & set(guilds) == {guilds[0]}
