"""A bot in more guilds than one shard may hold: the runner connects the shard count GET /gateway/bot
recommends within the identify limits, every guild's events arrive once, on the guild's shard, and a runner
killed and replaced RESUMEs every shard."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from emulator.discord import DiscordEmulator
from gateways.fleet import guild_shard
from gateways.sessions import GatewaySession, SessionStore
from models.events import EventEnvelope
from settings import Settings
from streams.catalog import DISCORD_EVENTS
from tests.gateways.conftest import (
    Runners,
    emulator_config,
    eventually,
    opened_events,
    read_all,
    seal_bot,
)
from vault.user_keys import UserKeyStore

pytestmark = [pytest.mark.stack, pytest.mark.timeout(180)]

SHARDS = 3
GUILDS_PER_SHARD = 2


@pytest.fixture(scope="module")
async def emulator() -> AsyncIterator[DiscordEmulator]:
    # Discord's limits shrunk to a few guilds, so three shards need only six guilds.
    emu = DiscordEmulator(
        emulator_config(max_guilds_per_shard=GUILDS_PER_SHARD, guilds_per_recommended_shard=GUILDS_PER_SHARD)
    )
    await emu.start()
    yield emu
    await emu.stop()


def spread_guild_ids(shards: int) -> list[str]:
    """Fresh snowflakes whose timestamps put GUILDS_PER_SHARD guilds on each of `shards` shards, as Discord
    routes them: (guild_id >> 22) % shards."""
    first = uuid.uuid4().int % 10**9 * shards
    return [str((first + n) << 22) for n in range(shards * GUILDS_PER_SHARD)]


async def test_a_bot_needing_several_shards_connects_them_all_and_resumes_them_after_a_runner_dies(
    emulator: DiscordEmulator,
    stack_up: Settings,
    schema_dsn: str,
    key_spec: str,
    data_keys: UserKeyStore,
    namespace: str,
    runners: Runners,
    redis_client: aioredis.Redis,
) -> None:
    guild_ids = spread_guild_ids(SHARDS)
    user = emulator.add_user("crowd")
    channels: dict[str, str] = {}
    for guild_id in guild_ids:
        emulator.add_guild(f"guild-{guild_id}", id=guild_id)
        channels[guild_id] = emulator.add_channel(guild_id, "general").id
        emulator.add_member(guild_id, user.id)
    # Two identify buckets: shards 0 and 2 share one, so the third shard waits its 5 s.
    bot = emulator.add_bot("big", guild_ids=guild_ids, max_concurrency=2)
    await seal_bot(schema_dsn, key_spec, bot)
    sessions = SessionStore(redis_client, namespace)

    def connected() -> bool:
        return emulator.stats(bot.id)["connected_sessions"] == SHARDS

    async def post_everywhere(label: str) -> list[str]:
        """A message in every guild; waits until each shard's checkpoint covers it (RESUME needs one)."""
        before = await sessions.load_bot(bot.id, SHARDS)
        contents = [f"{label} in {guild_id}" for guild_id in guild_ids]
        for guild_id, content in zip(guild_ids, contents, strict=True):
            emulator.post_user_message(user.id, content, channels[guild_id])

        async def checkpointed() -> bool:
            after = await sessions.load_bot(bot.id, SHARDS)
            return all(_past(old, new) for old, new in zip(before, after, strict=True))

        assert await eventually(checkpointed, within_s=30)
        return contents

    first_runner = runners("big-east")
    assert await eventually(connected, within_s=60), first_runner.log()
    stats = emulator.stats(bot.id)
    assert (stats["identifies"], stats["identifies_rejected"]) == (SHARDS, 0), first_runner.log()
    before_kill = await post_everywhere("before")

    first_runner.kill()
    second_runner = runners("big-west")

    def resumed() -> bool:
        return connected() and emulator.stats(bot.id)["resumes"] >= SHARDS

    assert await eventually(resumed, within_s=60), second_runner.log()
    assert emulator.stats(bot.id)["identifies"] == SHARDS  # no shard started a new session
    after_kill = await post_everywhere("after")

    records = await read_all(stack_up.kafka_bootstrap, DISCORD_EVENTS, namespace)
    events = [envelope for envelope in await opened_events(records, data_keys) if envelope.bot_id == bot.id]
    messages = [e for e in events if e.type == "MESSAGE_CREATE"]
    assert Counter(e.data["content"] for e in messages) == Counter(before_kill + after_kill)
    assert all(e.shard_id == guild_shard(_guild(e), SHARDS) for e in messages)
    assert {e.shard_id for e in messages} == set(range(SHARDS))
    assert len({e.event_id for e in events}) == len(events)


def _past(old: GatewaySession | None, new: GatewaySession | None) -> bool:
    return new is not None and (old is None or new.seq > old.seq)


def _guild(envelope: EventEnvelope) -> str:
    assert envelope.guild_id is not None
    return envelope.guild_id


async def test_a_bot_that_outgrew_its_shard_count_is_sharded_afresh(
    emulator: DiscordEmulator,
    schema_dsn: str,
    key_spec: str,
    namespace: str,
    runners: Runners,
    redis_client: aioredis.Redis,
) -> None:
    # A runner left by the test before would take the bot too, and could drop the stale session and hand
    # the bot over in a rebalance: the runner taking it then sees no session and never identifies as [0, 1].
    await runners.stop_all()
    guild_ids = spread_guild_ids(2)
    for guild_id in guild_ids:
        emulator.add_guild(f"guild-{guild_id}", id=guild_id)
    bot = emulator.add_bot("grown", guild_ids=guild_ids, max_concurrency=2)
    # A session from when one shard sufficed, which Discord no longer knows: the RESUME fails, the IDENTIFY
    # as [0, 1] is closed with 4011, and the runner starts over with the count Discord now recommends.
    sessions = SessionStore(redis_client, namespace)
    stale = GatewaySession(
        session_id="forgotten", seq=5, resume_gateway_url=emulator.gateway_url, generation="old"
    )
    await sessions.save_many([(bot.id, 0, stale)])
    await seal_bot(schema_dsn, key_spec, bot)
    runner = runners("big-grown")

    def sharded() -> bool:
        return emulator.stats(bot.id)["connected_sessions"] == 2

    assert await eventually(sharded, within_s=60), runner.log()
    # READY's checkpoint records the new layout, so the next runner resumes both shards.
    assert emulator.stats(bot.id)["close_codes"].get("4011") == 1

    async def checkpointed() -> bool:
        return all(s is not None and s.shard_count == 2 for s in await sessions.load_bot(bot.id, 2))

    assert await eventually(checkpointed, within_s=30)
