"""Two runners share the bots; when one is killed, the other takes its bots over by RESUME and performs the
actions it left behind."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from emulator.discord import DiscordEmulator
from gateways.ownership import bot_partition
from gateways.sessions import GatewaySession, SessionStore
from models.actions import SendMessage
from streams.catalog import DISCORD_ACTIONS
from tests.gateways.conftest import RunnerProcess, World, eventually, produce_action, seal_bot

pytestmark = [pytest.mark.stack, pytest.mark.timeout(150)]

ASSIGNED = re.compile(r"runner (\S+): assigned partitions \[([0-9, ]*)\]")


def assignment(runner: RunnerProcess) -> set[int] | None:
    """The runner's latest assignment, from its log."""
    found = ASSIGNED.findall(runner.log())
    if not found:
        return None
    return {int(p) for p in found[-1][1].split(",") if p.strip()}


def bot_ids_covering_every_partition(first_id: int) -> list[str]:
    """One bot id per partition of discord.actions, so both runners surely own bots."""
    chosen: dict[int, str] = {}
    candidate = first_id
    while len(chosen) < DISCORD_ACTIONS.partitions:
        chosen.setdefault(bot_partition(str(candidate), DISCORD_ACTIONS.partitions), str(candidate))
        candidate += 1
    return list(chosen.values())


async def test_killing_a_runner_moves_its_bots_to_the_other_which_resume_them(
    emulator: DiscordEmulator,
    world: World,
    schema_dsn: str,
    key_spec: str,
    namespace: str,
    producer: AIOKafkaProducer,
    runners: Callable[..., RunnerProcess],
    redis_client: aioredis.Redis,
) -> None:
    bot_ids = bot_ids_covering_every_partition(1_300_000_000_000_000_000 + uuid.uuid4().int % 10**15)
    for n, bot_id in enumerate(bot_ids):
        bot = emulator.add_bot(f"fleet-{n}", id=bot_id, guild_ids=[world.guild_id])
        await seal_bot(schema_dsn, key_spec, bot)
    sessions = SessionStore(redis_client, namespace)

    async def checkpointed_after(previous: dict[str, GatewaySession | None]) -> bool:
        """Every bot's session is in Redis, past where it was."""
        for bot_id in bot_ids:
            session, seen = await sessions.load(bot_id, 0), previous.get(bot_id)
            if session is None or (seen is not None and session.seq <= seen.seq):
                return False
        return True

    async def nudge_and_wait_for_checkpoints() -> None:
        # A runner checkpoints every second, and Discord does not replay READY's burst: a bot moved or
        # crashed before its first checkpoint identifies again, by design. A message every bot receives,
        # then its checkpoint, makes each session resumable before the test moves bots around.
        previous = {bot_id: await sessions.load(bot_id, 0) for bot_id in bot_ids}
        emulator.post_user_message(world.user_id, "checkpoint me", world.channel_id)
        assert await eventually(lambda: checkpointed_after(previous), within_s=20)

    first = runners("east")
    assert await eventually(
        lambda: all(emulator.stats(bot_id)["connected_sessions"] == 1 for bot_id in bot_ids), within_s=60
    ), first.log()
    await nudge_and_wait_for_checkpoints()
    second = runners("west")

    def settled() -> bool:
        east, west = assignment(first) or set(), assignment(second) or set()
        return (
            bool(east and west)
            and not east & west
            and east | west == set(range(DISCORD_ACTIONS.partitions))
            and all(emulator.stats(bot_id)["connected_sessions"] == 1 for bot_id in bot_ids)
        )

    assert await eventually(settled, within_s=60), first.log() + second.log()
    await nudge_and_wait_for_checkpoints()
    identifies = {bot_id: emulator.stats(bot_id)["identifies"] for bot_id in bot_ids}
    resumes = {bot_id: emulator.stats(bot_id)["resumes"] for bot_id in bot_ids}
    assert set(identifies.values()) == {1}
    victims = [
        b for b in bot_ids if bot_partition(b, DISCORD_ACTIONS.partitions) in (assignment(first) or set())
    ]
    assert victims and len(victims) < len(bot_ids)

    first.kill()
    run = uuid.uuid4().hex[:8]
    expected = {bot_id: f"after the kill {run} to {bot_id}" for bot_id in bot_ids}
    for bot_id, content in expected.items():
        await produce_action(
            producer,
            namespace,
            SendMessage(
                action_id=f"failover-{run}-{bot_id}",
                bot_id=bot_id,
                guild_id=world.guild_id,
                channel_id=world.channel_id,
                content=content,
            ),
        )

    def taken_over() -> bool:
        return all(
            emulator.stats(b)["connected_sessions"] == 1 and emulator.stats(b)["resumes"] > resumes[b]
            for b in victims
        )

    assert await eventually(taken_over, within_s=30), second.log()
    assert {bot_id: emulator.stats(bot_id)["identifies"] for bot_id in bot_ids} == identifies

    def delivered() -> Counter[str]:
        return Counter(
            a.payload["content"]
            for a in emulator.actions(kind="message")
            if a.payload["content"] in expected.values()
        )

    assert await eventually(lambda: len(delivered()) == len(expected), within_s=30), second.log()
    assert delivered() == Counter(expected.values())
    for bot_id, content in expected.items():
        assert [a.payload["content"] for a in emulator.actions(bot_id=bot_id, kind="message")].count(
            content
        ) == 1
