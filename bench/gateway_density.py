"""Gateway density: how many bots one process holds, what each costs, and how fast it forwards to Kafka.

    .venv/bin/python -m bench.gateway_density 1000                  # the lean shard layer (gateways.fleet)
    .venv/bin/python -m bench.gateway_density 200 --mode discordpy  # a discord.Client per bot, for the record

The emulator runs in its own process (its memory is not counted). The lean mode connects N bots through
gateways.fleet.Fleet exactly as a runner does (session checkpoints in Redis, identify limits, dispatches to
Kafka) but without the roster and the consumer group; then the emulator posts traffic in the bots' guilds and
the bench counts the dispatches Kafka acknowledged. The last line printed is the result as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from emulator.discord import EmulatorControl  # noqa: E402
from gateways import protocol  # noqa: E402
from gateways.fleet import Fleet  # noqa: E402
from gateways.identify import IdentifyLimiter  # noqa: E402
from gateways.rest import RestClients, use_api_base  # noqa: E402
from gateways.sessions import SessionStore, connect_redis  # noqa: E402
from gateways.shard import BotCredentials, ShardState  # noqa: E402
from infra.stack.service import free_ports  # noqa: E402
from settings import get_settings  # noqa: E402
from streams.admin import apply_catalog  # noqa: E402
from streams.catalog import DISCORD_EVENTS  # noqa: E402
from streams.codec import key_partitioner  # noqa: E402
from streams.sealing import DataKeys  # noqa: E402
from vault.store import HealthReason  # noqa: E402
from vault.user_keys import user_keys  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


def settled_rss() -> int:
    gc.collect()
    return rss_bytes()


@contextlib.contextmanager
def emulator_process() -> Iterator[str]:
    """The emulator in its own process, started before the event loop (no child-watcher thread to count)."""
    (port,) = free_ports(1)
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator.discord", "--port", str(port)],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


async def wait_for_emulator(control: EmulatorControl) -> None:
    for _ in range(200):
        with contextlib.suppress(aiohttp.ClientError):
            await control.health()
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the emulator did not start")


def world_spec(bots: int, bots_per_guild: int) -> dict[str, Any]:
    """One text channel and one user per guild, `bots_per_guild` bots in each."""
    guild_count = -(-bots // bots_per_guild)
    user_id = "1100000000000000001"
    guilds = [
        {
            "id": str(1200000000000000000 + g),
            "name": f"guild {g}",
            "channels": [{"id": str(1300000000000000000 + g), "name": "general"}],
            "members": [user_id],
        }
        for g in range(guild_count)
    ]
    spec_bots = [
        {
            "id": str(1400000000000000000 + b),
            "username": f"bot{b}",
            "guild_ids": [guilds[b // bots_per_guild]["id"]],
        }
        for b in range(bots)
    ]
    return {"users": [{"id": user_id, "username": "speaker"}], "guilds": guilds, "bots": spec_bots}


async def wait_until(condition: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.25)
    return True


def runner_http() -> aiohttp.ClientSession:
    """The session a runner shares among its connections."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, enable_cleanup_closed=True),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


def runner_fleet(
    base: str,
    namespace: str,
    http: aiohttp.ClientSession,
    producer: AIOKafkaProducer,
    redis: Any,
    on_token_dead: Any,
    keys: DataKeys,
) -> Fleet:
    """A fleet as a runner builds it, against the emulator at `base`, in its own topic/key namespace."""
    return Fleet(
        http=http,
        rest=RestClients(http),
        producer=producer,
        events_topic=DISCORD_EVENTS.name_in(namespace),
        sessions=SessionStore(redis, namespace),
        identify=IdentifyLimiter(redis, namespace),
        gateway_url=gateway_url(base),
        intents=protocol.intents_value(protocol.DEFAULT_INTENTS),
        on_token_dead=on_token_dead,
        keys=keys,
        linger_s=get_settings().gateway_producer.linger_ms / 1000,
    )


def gateway_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/"


async def drop_topic(bootstrap: str, topic: str) -> None:
    """The bench's topic goes when it is done: every partition costs the broker a file descriptor."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


async def traffic(args: argparse.Namespace, base: str, guild_ids: list[str], fleet: Fleet) -> dict[str, Any]:
    """Offer `rate` user messages per second (each reaching `bots_per_guild` bots) for `traffic_s` seconds.

    events_per_s counts what Kafka acknowledged during the window: the offered load while the runner keeps
    up, its capacity when it does not. Then the backlog drains before memory is measured again.
    """
    async with EmulatorControl(base) as control:
        start_count = fleet.forwarded
        cpu_before = time.process_time()
        await control.start_traffic(guild_ids=guild_ids, rate_per_s=args.rate, duration_s=args.traffic_s)
        began = time.monotonic()
        await asyncio.sleep(args.traffic_s)
        in_window = fleet.forwarded - start_count
        elapsed = time.monotonic() - began
        await asyncio.sleep(0.5)  # the generator's last batch
        sent = sum(job["sent"] for job in await control.traffic())
    expected = sent * args.bots_per_guild
    drained = await wait_until(lambda: fleet.forwarded - start_count >= expected, 120)
    drain_s = time.monotonic() - began - elapsed
    cpu_s = time.process_time() - cpu_before
    return {
        "offered_events_per_s": round(args.rate * args.bots_per_guild),
        "messages_posted": sent,
        "dispatches_expected": expected,
        "events_forwarded": fleet.forwarded - start_count,
        "events_per_s": round(in_window / elapsed),
        "backlog_drained": drained,
        "drain_s": round(drain_s, 1),
        # With the emulator no longer generating, the runner has a core to itself.
        "drain_events_per_s": round((fleet.forwarded - start_count - in_window) / drain_s),
        # This process's CPU (the fleet's, and a little of the bench's own polling) per forwarded event.
        "cpu_us_per_event": round(cpu_s * 1e6 / max(fleet.forwarded - start_count, 1), 1),
    }


async def lean(
    args: argparse.Namespace, base: str, created: dict[str, Any], guild_ids: list[str]
) -> dict[str, Any]:
    settings = get_settings()
    namespace = f"bench{uuid.uuid4().hex[:6]}."
    await apply_catalog(settings.kafka_bootstrap, namespace, (DISCORD_EVENTS,))
    use_api_base(f"{base}/api/v10")
    redis = connect_redis(settings.redis_url)
    http = runner_http()
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        linger_ms=0,  # the fleet lingers (gateways/forwarder.py)
        max_batch_size=settings.gateway_producer.max_batch_bytes,
        partitioner=key_partitioner,
    )
    await producer.start()
    dead: list[tuple[str, HealthReason]] = []
    # The fleet seals events as the runner's does: the emulated users' data keys are the vault's.
    scope = contextlib.AsyncExitStack()
    keys = await scope.enter_async_context(user_keys(settings))

    async def token_dead(bot: BotCredentials, reason: HealthReason) -> None:
        dead.append((bot.bot_id, reason))

    fleet = runner_fleet(base, namespace, http, producer, redis, token_dead, keys)
    checkpoints = asyncio.create_task(fleet.run())
    bots = [
        BotCredentials(bot_id=b["id"], token_id=uuid.uuid4(), token=SecretStr(b["token"]))
        for b in created["bots"]
    ]
    before = settled_rss()
    threads_before = thread_count()
    began = time.monotonic()
    for bot in bots:
        await fleet.connect(bot)
    ready = await wait_until(
        lambda: all(s.state is ShardState.READY for s in fleet.all_shards()), args.connect_timeout_s
    )
    connect_s = time.monotonic() - began
    connected = sum(s.state is ShardState.READY for s in fleet.all_shards())
    await asyncio.sleep(2)  # initial bursts forwarded and acknowledged
    idle = settled_rss()

    events: dict[str, Any] = {}
    if args.traffic_s > 0:
        events = await traffic(args, base, guild_ids, fleet)
        events["rss_after_traffic_mb"] = round(settled_rss() / 2**20, 1)
    threads = thread_count()
    checkpoints.cancel()
    await fleet.close()
    await producer.stop()
    await http.close()
    await redis.aclose()
    await scope.aclose()
    await drop_topic(settings.kafka_bootstrap, DISCORD_EVENTS.name_in(namespace))
    return {
        "mode": "lean",
        "bots": len(bots),
        "connected": connected,
        "all_ready": ready,
        "connect_s": round(connect_s, 1),
        "rss_per_bot_kb": round((idle - before) / len(bots) / 1024, 1),
        "rss_before_mb": round(before / 2**20, 1),
        "rss_connected_mb": round(idle / 2**20, 1),
        "threads": threads,
        "threads_before": threads_before,
        "tokens_dead": len(dead),
        **events,
    }


async def discordpy(args: argparse.Namespace, base: str, created: dict[str, Any]) -> dict[str, Any]:
    import discord
    import yarl

    discord.http.Route.BASE = f"{base}/api/v10"
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(base.replace("http://", "ws://") + "/")
    intents = discord.Intents.default()
    intents.message_content = True
    intents.members = True
    before = settled_rss()
    threads_before = thread_count()
    clients: list[discord.Client] = []
    tasks: list[asyncio.Task[None]] = []
    slots = asyncio.Semaphore(50)

    async def start(token: str) -> None:
        client = discord.Client(intents=intents, chunk_guilds_at_startup=False)
        async with slots:
            await client.login(token)  # users/@me, then gateway/bot on connect
            tasks.append(asyncio.create_task(client.connect(reconnect=False)))
            await client.wait_until_ready()
        clients.append(client)

    began = time.monotonic()
    await asyncio.gather(*(start(b["token"]) for b in created["bots"]))
    connect_s = time.monotonic() - began
    await asyncio.sleep(2)
    idle = settled_rss()
    threads = thread_count()
    for client in clients:
        await client.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "mode": "discordpy",
        "bots": len(created["bots"]),
        "connected": len(clients),
        "connect_s": round(connect_s, 1),
        "rss_per_bot_kb": round((idle - before) / len(created["bots"]) / 1024, 1),
        "rss_before_mb": round(before / 2**20, 1),
        "rss_connected_mb": round(idle / 2**20, 1),
        "threads": threads,
        "threads_before": threads_before,
    }


async def run(args: argparse.Namespace, base: str) -> dict[str, Any]:
    spec = world_spec(args.bots, args.bots_per_guild)
    async with EmulatorControl(base) as control:
        await wait_for_emulator(control)
        created = await control.load_world(spec)
        guild_ids = [guild["id"] for guild in spec["guilds"]]
        if args.mode == "discordpy":
            return await discordpy(args, base, created)
        return await lean(args, base, created, guild_ids)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("bots", type=int, help="how many bots to connect (up to 10,000)")
    parser.add_argument("--mode", choices=("lean", "discordpy"), default="lean")
    parser.add_argument("--bots-per-guild", type=int, default=10)
    parser.add_argument("--rate", type=float, default=500.0, help="user messages per second during traffic")
    parser.add_argument("--traffic-s", type=float, default=10.0)
    parser.add_argument("--connect-timeout-s", type=float, default=600.0)
    arguments = parser.parse_args()
    with emulator_process() as emulator_base:
        result = asyncio.run(run(arguments, emulator_base))
    print(json.dumps(result))
