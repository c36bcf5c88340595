"""Propagation: changes reach `agent.deployments` through the outbox, once and in order from a consumer's
point of view, even when the relay dies between the broker's ack and marking the rows published."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from api.background import consume_token_health
from api.presets import all_presets
from api.routing_records import dm_key
from api.store import Store
from emulator.discord.server import DiscordEmulator
from models.deployments import RoutingRecord
from models.tiers import Tier
from models.tokens import TokenStatus
from settings import Settings
from streams.catalog import AGENT_DEPLOYMENTS
from streams.codec import decode_key
from streams.outbox import run_relay, unpublished_count
from tests.api.conftest import NewOwner, guild_id
from tests.waiting import wait_until

pytestmark = pytest.mark.stack

REPO = Path(__file__).resolve().parents[2]
AddToken = Callable[..., Awaitable[dict[str, Any]]]
Records = list[tuple[str, RoutingRecord]]


async def read_records(
    settings: Settings, until: Callable[[Records], bool], timeout_s: float = 30.0
) -> Records:
    """Everything on this module's agent.deployments, from the start, until `until` holds."""
    consumer = AIOKafkaConsumer(
        AGENT_DEPLOYMENTS.name_in(settings.topic_namespace),
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: Records = []
    try:
        async with asyncio.timeout(timeout_s):
            while not until(records):
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    for message in batch:
                        key = decode_key(message.key)
                        assert key is not None
                        records.append((key, AGENT_DEPLOYMENTS.codec.decode(message.value)))
    finally:
        await consumer.stop()
    return records


def applied(records: Records, key: str) -> list[RoutingRecord]:
    """What a consumer applies: records of `key` newer than the one it holds (duplicates are ignored)."""
    held = 0
    accepted = []
    for record_key, record in records:
        if record_key == key and record.version > held:
            held = record.version
            accepted.append(record)
    return accepted


@pytest.fixture
async def relay(pg_dsn: str, api_settings: Settings) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_relay(pg_dsn, api_settings.kafka_bootstrap, stop=stop, poll_interval_s=0.2)
    )
    yield
    stop.set()
    await asyncio.wait_for(task, 30)


async def test_a_deployed_preset_appears_on_the_topic_and_edits_follow(
    client: httpx.AsyncClient, new_owner: NewOwner, add_token: AddToken, api_settings: Settings, relay: None
) -> None:
    owner = await new_owner(Tier.business)
    token = await add_token(owner)
    guild = guild_id()
    deployed = await client.post(
        "/presets/luna/deploy", json={"guild_id": guild, "token_id": token["token_id"]}, headers=owner
    )
    assert deployed.status_code == 201, deployed.text
    agent, deployment = deployed.json()["agent"], deployed.json()["deployment"]
    assert deployment["dm_enabled"] is True  # Luna's own channel setting

    luna = all_presets()["luna"].config
    records = await read_records(
        api_settings, lambda rs: {k for k, _ in rs} >= {guild, dm_key(token["bot_user_id"])}
    )
    record = applied(records, guild)[-1]
    assert record.version == 1 and len(record.deployments) == 1
    assert record.deployments[0].agent == luna and record.deployments[0].owner_tier is Tier.business
    assert str(record.deployments[0].deployment.deployment_id) == deployment["deployment_id"]
    assert applied(records, dm_key(token["bot_user_id"]))[-1].deployments[0].agent.name == "Luna"

    edited = {**agent["config"], "name": "Luna (ours)"}
    assert (await client.put(f"/agents/{agent['agent_id']}", json=edited, headers=owner)).status_code == 200
    records = await read_records(api_settings, lambda rs: len(applied(rs, guild)) == 2)
    assert applied(records, guild)[-1].deployments[0].agent.name == "Luna (ours)"


async def _relay_process(dsn: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api.cli", "relay", "--dsn", dsn, *args, cwd=REPO, env={**os.environ}
    )


async def test_a_relay_killed_between_publish_and_mark_loses_nothing_and_repeats_nothing(
    client: httpx.AsyncClient,
    new_owner: NewOwner,
    add_token: AddToken,
    api_settings: Settings,
    pg_dsn: str,
    pool: asyncpg.Pool,
) -> None:
    owner = await new_owner(Tier.pro)
    token = await add_token(owner)
    agent = (
        await client.post("/agents", json=all_presets()["bare"].config.model_dump(mode="json"), headers=owner)
    ).json()
    guild = guild_id()
    url = f"/agents/{agent['agent_id']}"
    deployed = await client.post(
        f"{url}/deployments", json={"guild_id": guild, "token_id": token["token_id"]}, headers=owner
    )
    assert deployed.status_code == 201
    for index in range(1, 6):
        assert (
            await client.put(url, json={**agent["config"], "name": f"v{index}"}, headers=owner)
        ).status_code == 200
    assert await unpublished_count(pool) == 6

    crashing = await _relay_process(pg_dsn, "--batch-size", "4", "--crash-after-publish")
    assert await asyncio.wait_for(crashing.wait(), 60) == -signal.SIGKILL
    assert await unpublished_count(pool) == 6  # published, acknowledged, but never marked

    for index in range(6, 8):
        assert (
            await client.put(url, json={**agent["config"], "name": f"v{index}"}, headers=owner)
        ).status_code == 200

    async def drained() -> bool:
        return await unpublished_count(pool) == 0

    restarted = await _relay_process(pg_dsn)
    try:
        await wait_until(drained, "the restarted relay to publish the outbox", 60)
    finally:
        restarted.terminate()
        await restarted.wait()

    records = await read_records(api_settings, lambda rs: any(k == guild and r.version == 8 for k, r in rs))
    raw = [record.version for key, record in records if key == guild]
    assert raw == [1, 2, 3, 4, 1, 2, 3, 4, 5, 6, 7, 8]  # the killed relay's batch went out twice
    seen = applied(records, guild)
    assert [r.version for r in seen] == list(range(1, 9))  # each change once, in order
    assert [r.deployments[0].agent.name for r in seen] == ["Music Bot", *(f"v{i}" for i in range(1, 8))]


async def test_a_token_revoked_at_discord_moves_its_deployments_through_tokens_health(
    client: httpx.AsyncClient,
    new_owner: NewOwner,
    add_token: AddToken,
    api_settings: Settings,
    emulator: DiscordEmulator,
    relay: None,
    pool: asyncpg.Pool,
) -> None:
    owner = await new_owner(Tier.pro)
    dying, spare = await add_token(owner), await add_token(owner)
    agent = (
        await client.post(
            "/agents", json=all_presets()["utility"].config.model_dump(mode="json"), headers=owner
        )
    ).json()
    guild = guild_id()
    deployment = (
        await client.post(
            f"/agents/{agent['agent_id']}/deployments",
            json={"guild_id": guild, "token_id": dying["token_id"]},
            headers=owner,
        )
    ).json()
    ctx = client._transport.app.state.ctx  # type: ignore[attr-defined]
    store: Store = ctx.store
    stop = asyncio.Event()
    consumer = asyncio.create_task(
        consume_token_health(store, ctx.erasures.stores.user_keys, api_settings.kafka_bootstrap, stop)
    )

    async def moved() -> bool:
        now = await store.deployments.get(UUID(deployment["deployment_id"]), None)
        return str(now.token_id) == spare["token_id"]

    try:
        await emulator.revoke_token(dying["bot_user_id"])
        event = await ctx.vault.check_health(UUID(dying["token_id"]))
        assert event is not None and event.status is TokenStatus.revoked
        await wait_until(moved, "the deployment to move to the spare token")
    finally:
        stop.set()
        await asyncio.wait_for(consumer, 30)
    records = await read_records(api_settings, lambda rs: any(k == guild and r.version == 2 for k, r in rs))
    assert applied(records, guild)[-1].deployments[0].deployment.bot_id == spare["bot_user_id"]
    notified = await pool.fetchval("SELECT count(*) FROM outbox WHERE topic LIKE '%owner.notifications'")
    assert notified == 1
