"""A runner killed while its bot plays: the runner taking the bot over rejoins the voice channel and the
track goes on from where it was saved."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from emulator.discord import DiscordEmulator
from gateways.ownership import bot_partition
from gateways.voice.store import VoiceStore
from models.actions import VoiceJoin, VoicePlay
from streams.catalog import DISCORD_ACTIONS
from tests.gateways.conftest import RunnerProcess, World, eventually, produce_action, seal_bot, tone
from tests.gateways.test_gateway_failover import assignment, bot_ids_covering_every_partition

pytestmark = [pytest.mark.stack, pytest.mark.timeout(180)]


async def test_a_killed_runners_bot_rejoins_through_the_new_owner_and_continues_the_track(
    emulator: DiscordEmulator,
    world: World,
    schema_dsn: str,
    key_spec: str,
    namespace: str,
    producer: AIOKafkaProducer,
    runners: Callable[..., RunnerProcess],
    redis_client: aioredis.Redis,
    tmp_path: Path,
) -> None:
    tone(tmp_path / "lofi.ogg", 120, 550)
    channel = emulator.add_channel(world.guild_id, "Radio", type=2)
    bot_ids = bot_ids_covering_every_partition(1_500_000_000_000_000_000 + uuid.uuid4().int % 10**15)
    for n, bot_id in enumerate(bot_ids):
        await seal_bot(
            schema_dsn, key_spec, emulator.add_bot(f"dj-{n}", id=bot_id, guild_ids=[world.guild_id])
        )
    env = {"DEEP_MUSIC_LIBRARY": str(tmp_path)}
    first, second = runners("voice-east", extra_env=env), runners("voice-west", extra_env=env)

    def settled() -> bool:
        east, west = assignment(first) or set(), assignment(second) or set()
        return (
            bool(east and west) and not east & west and east | west == set(range(DISCORD_ACTIONS.partitions))
        )

    assert await eventually(settled, within_s=60), first.log() + second.log()
    east = assignment(first) or set()
    dj = next(b for b in bot_ids if bot_partition(b, DISCORD_ACTIONS.partitions) in east)
    assert await eventually(lambda: emulator.stats(dj)["connected_sessions"] == 1, within_s=30), first.log()
    guild = world.guild_id
    await produce_action(
        producer,
        namespace,
        VoiceJoin(action_id=f"join-{dj}", bot_id=dj, guild_id=guild, channel_id=channel.id),
    )
    play = VoicePlay(action_id=f"play-{dj}", bot_id=dj, guild_id=guild, command="play", track="lofi")
    await produce_action(producer, namespace, play)

    def heard() -> dict[str, Any]:
        recordings = emulator.voice.received(guild, channel.id)["recordings"]
        return next((r for r in recordings if r["user_id"] == dj), {"packets": 0, "ssrcs": []})

    assert await eventually(lambda: heard()["packets"] >= 100, within_s=30), first.log()
    store = VoiceStore(redis_client, namespace)

    async def saved_past_one_second() -> bool:
        presences = await store.load(dj)
        return bool(presences and presences[0].playing and presences[0].playing.position_s > 1)

    assert await eventually(saved_past_one_second, within_s=10)
    first.kill()
    assert await eventually(lambda: len(heard()["ssrcs"]) == 2, within_s=60), second.log()
    rejoined_at = heard()["packets"]
    assert await eventually(lambda: heard()["packets"] >= rejoined_at + 50, within_s=30), second.log()
    got = heard()
    assert got["dominant_hz"] == pytest.approx(550, abs=5)
    [presence] = await store.load(dj)
    assert presence.playing is not None and presence.playing.play_id == play.action_id
    assert presence.channel_id == channel.id
