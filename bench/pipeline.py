"""Pipeline benchmark: messages/s and latency through emulator -> gateway -> Kafka -> processors -> Kafka ->
gateway -> emulator, on this machine with the broker and the emulator on it.

The workload is what a fleet sees: most messages are chatter that no command or rule answers, a few are
commands that are. The demo runs without its playground (emulator, configuration API, gateway runner,
processors, inference worker)
and --guilds load guilds are added to it, each with --members members, two text channels and one music bot
(the "bare" preset, Mode 1) deployed through the configuration API. At rising rates, for STEP_S seconds each:

- chatter: the emulator's traffic generator posts plain messages across the load guilds at the offered rate;
  every one reaches its guild's bot over the gateway, is forwarded to `discord.events` and is routed and
  parsed by the processors. `processed_per_s` counts the processors' committed offsets on `discord.events`
  from the step's start to the moment they caught up with what the gateway forwarded.
- probes: /queue slash commands at PROBE_RATE_PER_S, answered through the whole loop; p50/p99 are from the
  command's post to the emulator's record of the answer. (Slash commands, because a prefix-command reply
  per probe would measure Discord's 5-per-5-s channel limit, not the pipeline.)
- CPU: microseconds of CPU per message of each process (emulator, gateway, processors, broker; and the
  broker's background, its CPU without traffic over as long, `broker_background_us`; and the part of the
  processors' figure outside the worker's main thread, `processors_other_threads_us`, which is Faust's
  Kafka consumer thread): with the rate this gives the cores the pipeline needs, `cores_needed_at_target`.

A step that cannot keep up (posted or processed below 90 % of the offered rate, probes unanswered, or the
processors still behind after DRAIN_S) ends the run. Two stages are also measured on their own: the processors
reading pre-produced chatter events, sealed as the gateway seals them (events/s and CPU per event of one
worker; Mode 1 agents, then a Mode 1/3/5 mix), and raw aiokafka produce -> consume as the ceiling, with each
processors stage's ratio to it (`processors_mode1_to_raw`, `processors_mix_to_raw`): the three in turn
--rounds times, each figure the median of the rounds (all of them in `stage_rounds`). The CPU per event of
sealing a message's personal fields and of opening them (`seal_us_per_event`, `open_us_per_event`) is measured
on its own too, and so is that of an inference request's prompt (`request_seal_us`, `request_open_us`), and
the wall time per event of opening a batch of members' events whose keys a worker has not cached, each reading
its own key and all prefetched in one read (`open_cold_us_per_event`, `open_cold_prefetched_us_per_event`).
Prints one JSON line at the end.

    .venv/bin/python -m bench.pipeline [--guilds 24] [--members 20] [--rates 1000,2500,5000,7500,10000]
    .venv/bin/python -m bench.pipeline --stages-only   # the processors stages and raw aiokafka only
    .venv/bin/python -m bench.pipeline --recovery      # the tables' recovery from their changelogs
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic import SecretStr

from bench.chatter import CHATTER, MIX, Guild, chatter, chatter_envelope, new_deployment, stage_world
from demo.seed import ApiClient, create_operator, deploy_agent
from demo.world import AgentPlan
from emulator.discord import EmulatorControl
from infra.stack.lifecycle import status as stack_status
from infra.stack.service import free_ports
from models.agent import AgentMode, ProactiveAction
from models.decisions import Priority
from models.deployments import DeployedAgent, RoutingRecord
from models.inference import ChatMessage, InferenceRequest, ReplyTarget
from models.templates import mode_template
from models.tiers import InferenceLane, Tier
from processors.table_catalog import PROCESSORS_APP_ID
from settings import REPO_ROOT, Settings, get_settings
from settings.runtime import settle_garbage_collector
from streams.admin import apply_catalog, delete_namespace
from streams.catalog import AGENT_DEPLOYMENTS, DISCORD_EVENTS, GUILD_PARTITIONS, INFERENCE_LANES
from streams.codec import encode_key
from streams.sealing import open_envelope, open_payload, seal_envelope, sealed_key_ids
from vault.user_keys import user_keys

TARGET_PER_S = 10_000
LATENCY_RATE_PER_S = 5_000
STEP_S = 10.0
DRAIN_S = 15.0
PROBE_RATE_PER_S = 20
BACKGROUND_S = 5.0
START_TIMEOUT_S = 180.0
RAW_MESSAGES = 50_000
STAGE_EVENTS = 30_000
SEAL_EVENTS = 20_000
SEAL_REQUESTS = 2_000
# Members first seen by a worker in one batch of events, whose keys it has not cached.
COLD_USERS = 500
PROCESS_NAMES = {"processors.cli": "processors", "gateways": "gateway", "emulator": "emulator"}


async def until(condition: Callable[[], Awaitable[bool]], deadline: float, interval_s: float = 0.05) -> bool:
    """Poll `condition` until it holds (True) or the monotonic `deadline` passes (False)."""
    while True:
        if await condition():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval_s)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_s(pid: int, thread: int | None = None) -> float:
    """User plus system CPU time the process (or only its thread `thread`) has used."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    stat = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def children(parent: int) -> dict[str, int]:
    """The demo's children measured here, by role, found from their command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue
        if ppid != parent:
            continue
        words = {arg.decode(errors="replace") for arg in argv}
        for marker, name in PROCESS_NAMES.items():
            if marker in words:
                found[name] = int(entry.name)
    return found


@dataclass(frozen=True)
class LoadGuild:
    guild_id: str
    bot_id: str
    channel_ids: tuple[str, ...]
    member_ids: tuple[str, ...]


async def add_load_guilds(
    control: EmulatorControl, http: httpx.AsyncClient, schema_dsn: str, guilds: int, members: int
) -> list[LoadGuild]:
    """Guilds with members, two text channels and a music bot each, deployed by one enterprise owner."""
    operator = ApiClient(http, await create_operator(schema_dsn))
    created = await operator.call(
        "POST", "/owners", {"name": "pipeline bench", "tier": Tier.enterprise.value}
    )
    owner = ApiClient(http, SecretStr(created["key"]["api_key"]))

    async def one(index: int) -> LoadGuild:
        guild = await control.add_guild(f"load {index}")
        channels = [(await control.add_channel(guild["id"], name))["id"] for name in ("general", "music")]
        users = [(await control.add_user(f"load{index}-{n}"))["id"] for n in range(members)]
        for user_id in users:
            await control.add_member(guild["id"], user_id)
        bot = await control.add_bot(username=f"Load Music {index}", guild_ids=[guild["id"]])
        plan = AgentPlan(f"load{index}", "bare", f"Load Music {index}", "!")
        await deploy_agent(owner, plan, bot["id"], SecretStr(bot["token"]), guild["id"])
        return LoadGuild(guild["id"], bot["id"], tuple(channels), tuple(users))

    return list(await asyncio.gather(*(one(index) for index in range(guilds))))


class Offsets:
    """How far the gateway has written `discord.events` and how far the processors have committed."""

    def __init__(self, bootstrap: str, namespace: str) -> None:
        self.topic = DISCORD_EVENTS.name_in(namespace)
        self.group = f"{namespace}{PROCESSORS_APP_ID}"
        self.partitions = [TopicPartition(self.topic, p) for p in range(DISCORD_EVENTS.partitions)]
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self.reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)

    async def start(self) -> None:
        await self.admin.start()
        await self.reader.start()

    async def stop(self) -> None:
        await self.reader.stop()
        await self.admin.close()

    async def written(self) -> int:
        return sum((await self.reader.end_offsets(self.partitions)).values())

    async def committed(self) -> int:
        offsets = await self.admin.list_consumer_group_offsets(self.group, partitions=self.partitions)
        return sum(max(o.offset, 0) for o in offsets.values())


async def probe_latencies(
    control: EmulatorControl, guilds: list[LoadGuild], duration_s: float, rate: float
) -> tuple[int, list[float]]:
    """/queue commands at `rate` for `duration_s` across the load guilds; (posted, latencies in seconds)."""
    seen = await control.actions(limit=1, kind="interaction_response")
    since = seen[-1]["seq"] if seen else 0
    posted: dict[str, float] = {}
    targets = itertools.cycle(guilds)
    start = time.time()
    tasks = []

    async def post(guild: LoadGuild, turn: int) -> None:
        sent_at = time.time()
        user = guild.member_ids[turn % len(guild.member_ids)]
        interaction = await control.invoke_command(guild.bot_id, user, guild.channel_ids[1], "queue")
        posted[interaction["id"]] = sent_at

    for n in range(int(duration_s * rate)):
        delay = start + n / rate - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(post(next(targets), n)))
    await asyncio.gather(*tasks)
    latencies: list[float] = []
    deadline = time.time() + DRAIN_S
    while len(latencies) < len(posted) and time.time() < deadline:
        answers = await control.actions(since=since, kind="interaction_response")
        # The answer, not the gateway's deferral (callback type 5) of a command the platform was slow on.
        refs = {a["payload"].get("interaction_id"): a["at"] for a in answers if a["payload"].get("type") != 5}
        latencies = [refs[ref] - sent for ref, sent in posted.items() if ref in refs]
        await asyncio.sleep(0.5)
    return len(posted), latencies


async def broker_background(pids: dict[str, int]) -> float | None:
    """The broker's CPU seconds per second over BACKGROUND_S with no traffic offered: a shared broker serves
    other clients, and its thousands of partitions cost it CPU of their own (retention, compaction checks)."""
    broker = pids.get("broker")
    if broker is None:
        return None
    before = cpu_s(broker)
    await asyncio.sleep(BACKGROUND_S)
    return (cpu_s(broker) - before) / BACKGROUND_S


async def step(
    control: EmulatorControl, guilds: list[LoadGuild], offsets: Offsets, pids: dict[str, int], rate: int
) -> dict[str, Any]:
    background = await broker_background(pids)
    written, committed = await offsets.written(), await offsets.committed()
    cpu = {name: cpu_s(pid) for name, pid in pids.items()}
    # A process's main thread has the process's id.
    worker = pids["processors"]
    worker_main = cpu_s(worker, worker)
    start = time.monotonic()
    job = await control.start_traffic(
        guild_ids=[g.guild_id for g in guilds], rate_per_s=rate, duration_s=STEP_S, content=CHATTER
    )
    deadline = start + STEP_S + DRAIN_S

    async def traffic_done() -> bool:
        return not next(j for j in await control.traffic() if j["id"] == job["id"])["running"]

    async def caught_up() -> bool:
        # The processors committed everything the gateway wrote (writes stop with the traffic).
        return await offsets.committed() >= await offsets.written()

    async def caught_up_at() -> float | None:
        """When the processors caught up after the traffic ended (within their commit interval)."""
        if await until(traffic_done, deadline, 0.2) and await until(caught_up, deadline):
            return time.monotonic()
        return None

    catching = asyncio.create_task(caught_up_at())
    probes, latencies = await probe_latencies(control, guilds, STEP_S, PROBE_RATE_PER_S)
    caught = await catching
    sent = next(j for j in await control.traffic() if j["id"] == job["id"])["sent"]
    elapsed = (caught or time.monotonic()) - start
    forwarded = await offsets.written() - written
    processed = await offsets.committed() - committed
    messages = sent + probes
    cpu_us = {name: round((cpu_s(pid) - cpu[name]) * 1e6 / max(messages, 1)) for name, pid in pids.items()}
    worker_main_us = (cpu_s(worker, worker) - worker_main) * 1e6 / max(messages, 1)
    measured_s = time.monotonic() - start
    return {
        "offered_per_s": rate,
        "posted_per_s": round(sent / STEP_S, 1),
        "forwarded_events": forwarded,
        "processed_events": processed,
        "processed_per_s": round(processed / elapsed, 1),
        "caught_up": caught is not None,
        "probes": probes,
        "probes_answered": len(latencies),
        "probe_p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "probe_p99_ms": round(percentile(latencies, 0.99) * 1000, 1) if latencies else None,
        "cpu_us_per_message": cpu_us,
        # The part of the processors' figure spent outside the worker's main thread: Faust runs the Kafka
        # consumer (fetch requests and responses, the hand-over of records) in a thread of its own.
        "processors_other_threads_us": round(cpu_us["processors"] - worker_main_us),
        # The broker's background (measured just before, without traffic) over as long as the CPU above was,
        # per message: the part of cpu_us_per_message's broker figure that the messages did not cause.
        "broker_background_us": (
            round(background * measured_s * 1e6 / max(messages, 1)) if background is not None else None
        ),
    }


def saturated(result: dict[str, Any]) -> bool:
    rate = result["offered_per_s"]
    return bool(
        not result["caught_up"]
        or result["posted_per_s"] < 0.9 * rate
        or result["processed_per_s"] < 0.9 * rate
        or result["probes_answered"] < 0.95 * result["probes"]
    )


def routine_world(count: int) -> list[RoutingRecord]:
    """`count` quiet guilds, each with one Mode 2 agent holding routines (hourly posts, a daily greeting):
    the cost of the routine timer, which ticks every second."""
    agent = mode_template(AgentMode.utility).model_copy(deep=True)
    routines = {
        "hourly": ProactiveAction(
            enabled=True, frequency="every 1 hour", daily_budget=24, message_template="hi"
        ),
        "greeting": ProactiveAction(enabled=True, time="10:00", message_template="Good morning"),
    }
    agent.behavior.proactive_actions.update(routines)
    records = []
    for index in range(count):
        guild_id, bot_id, channel_id = (str(2 * 10**18 + index * 1000 + n) for n in range(3))
        deployment = new_deployment(guild_id, bot_id, [channel_id])
        deployed = DeployedAgent(deployment=deployment, agent=agent, owner_tier=Tier.pro)
        records.append(RoutingRecord(key=guild_id, deployments=[deployed], version=1))
    return records


class StageWorld:
    """A namespace of its own with the stage's routing published, and chatter events produced into it for one
    processors worker (`python -m processors.cli`) to read.

    The events are sealed as the gateway seals them, under the members' data keys (the same members every
    run, whose keys are kept): the worker opens each event that concerns an agent, its batch's keys read in
    one round trip, and seals its outputs under keys it has cached, as in production. (Clear events were
    never opened, and the first decision about each member read its key alone, mid-batch.)"""

    def __init__(self, settings: Settings, world: list[Guild]) -> None:
        self.namespace = f"b{uuid.uuid4().hex[:8]}."
        self.settings = settings
        self.bootstrap = settings.kafka_bootstrap
        self.world = world
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, linger_ms=5, max_batch_size=512 * 1024
        )
        self.offsets = Offsets(self.bootstrap, self.namespace)
        self.resources = contextlib.AsyncExitStack()
        self.prepared = 0
        self.produced = 0

    async def start(self, routing: list[RoutingRecord]) -> None:
        self.keys = await self.resources.enter_async_context(user_keys(self.settings))
        await apply_catalog(self.bootstrap, self.namespace)
        await self.producer.start()
        await self.offsets.start()
        for record in routing:
            value = AGENT_DEPLOYMENTS.codec.encode(record)
            await self.producer.send(
                AGENT_DEPLOYMENTS.name_in(self.namespace), value, key=encode_key(record.key)
            )

    async def stop(self) -> None:
        await self.offsets.stop()
        await self.producer.stop()
        await delete_namespace(self.bootstrap, self.namespace)
        await self.resources.aclose()

    async def records(self, count: int) -> list[tuple[bytes, bytes]]:
        """The next `count` chatter events as (key, value) records, sealed."""
        records = []
        for n in range(self.prepared, self.prepared + count):
            envelope = await seal_envelope(chatter(self.world, n), self.keys)
            records.append((encode_key(envelope.key), DISCORD_EVENTS.codec.encode(envelope)))
        self.prepared += count
        return records

    async def send(self, records: list[tuple[bytes, bytes]]) -> None:
        events = DISCORD_EVENTS.name_in(self.namespace)
        for key, value in records:
            await self.producer.send(events, value, key=key)
        await self.producer.flush()
        self.produced += len(records)

    async def produce(self, count: int) -> None:
        await self.send(await self.records(count))

    async def all_committed(self) -> bool:
        return await self.offsets.committed() >= self.produced

    async def start_worker(self) -> asyncio.subprocess.Process:
        env = {**os.environ, "DEEP_TOPIC_NAMESPACE": self.namespace, "DEEP_LOG_LEVEL": "WARNING"}
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "processors.cli", cwd=REPO_ROOT, env=env, stdout=asyncio.subprocess.DEVNULL
        )

    async def first_commits(self, worker: asyncio.subprocess.Process) -> None:
        """One event for every guild, until the worker committed it: it has joined, recovered its tables
        and handled an event of every guild."""
        await self.produce(len(self.world))
        deadline = time.monotonic() + START_TIMEOUT_S
        while not await self.all_committed():
            if time.monotonic() > deadline or worker.returncode is not None:
                raise SystemExit("the processors worker did not start")
            await asyncio.sleep(0.2)

    async def changelogs(self) -> dict[str, Any]:
        """Records and value bytes on the tables' changelog topics (GUILD_PARTITIONS each): what a worker
        reads to recover."""
        reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await reader.start()
        try:
            prefix = f"{self.namespace}{PROCESSORS_APP_ID}-"
            topics = [t for t in await reader.topics() if t.startswith(prefix) and t.endswith("-changelog")]
            tps = [TopicPartition(t, p) for t in topics for p in range(GUILD_PARTITIONS)]
            reader.assign(tps)
            await reader.seek_to_beginning(*tps)
            ends = await reader.end_offsets(tps)
            by_table: dict[str, int] = {}
            records = 0
            pending = {tp for tp in tps if ends[tp] > 0}
            while pending:
                for tp, batch in (await reader.getmany(*pending, timeout_ms=1000)).items():
                    records += len(batch)
                    table = tp.topic.removeprefix(prefix).removesuffix("-changelog")
                    by_table[table] = by_table.get(table, 0) + sum(len(r.value or b"") for r in batch)
                pending = {tp for tp in pending if await reader.position(tp) < ends[tp]}
        finally:
            await reader.stop()
        return {
            "changelog_records": records,
            "changelog_bytes": sum(by_table.values()),
            "changelog_bytes_by_table": dict(sorted(by_table.items(), key=lambda item: -item[1])),
        }


async def stop_worker(worker: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        worker.send_signal(signal.SIGTERM)
    await worker.wait()


async def processors_alone(
    settings: Settings, guilds: int, modes: tuple[AgentMode, ...], routine_deployments: int = 0
) -> dict[str, Any]:
    """One worker reading STAGE_EVENTS chatter events produced beforehand, beside `routine_deployments`
    deployments holding routines."""
    stage = StageWorld(settings, stage_world(guilds, modes))
    await stage.start([*(entry[0] for entry in stage.world), *routine_world(routine_deployments)])
    worker = await stage.start_worker()
    try:
        await stage.first_commits(worker)
        # Sealed before the clock starts: the gateway's work, not the worker's.
        records = await stage.records(STAGE_EVENTS)
        before = cpu_s(worker.pid)
        start = time.monotonic()
        await stage.send(records)
        await until(stage.all_committed, start + START_TIMEOUT_S)
        elapsed = time.monotonic() - start
        used = cpu_s(worker.pid) - before
    finally:
        await stop_worker(worker)
        await stage.stop()
    return {
        "events": STAGE_EVENTS,
        "events_per_s": round(STAGE_EVENTS / elapsed),
        "cpu_us_per_event": round(used * 1e6 / STAGE_EVENTS),
    }


async def sealing_cost(settings: Settings) -> dict[str, float]:
    """CPU per chatter event of sealing its personal fields (the gateway's side) and of opening them (the
    processors' side), through the vault's key store with its keys cached, as in steady operation. The
    bench's 50 users get keys of their own, destroyed afterwards."""
    users = [str(9 * 10**17 + uuid.uuid4().int % 10**17) for _ in range(50)]
    guild_id, bot_id, channel_id = (str(3 * 10**18 + n) for n in range(3))
    envelopes = [
        chatter_envelope(n, guild_id, bot_id, channel_id, users[n % len(users)]) for n in range(SEAL_EVENTS)
    ]
    # The collector as the services run it (settings.runtime): its full passes over the events held here
    # would be counted as sealing's cost otherwise.
    settle_garbage_collector()
    async with user_keys(settings) as keys:
        try:
            for user_id in users:
                await keys.data_key_for(user_id)
            began = time.process_time()
            sealed = [await seal_envelope(envelope, keys) for envelope in envelopes]
            sealing = time.process_time() - began
            began = time.process_time()
            opened = [await open_envelope(envelope, keys) for envelope in sealed]
            opening = time.process_time() - began
        finally:
            for user_id in users:
                await keys.destroy_user_keys(user_id)
    assert opened == envelopes
    return {
        "seal_us_per_event": round(sealing * 1e6 / SEAL_EVENTS, 1),
        "open_us_per_event": round(opening * 1e6 / SEAL_EVENTS, 1),
        **await request_sealing_cost(settings, guild_id, bot_id, channel_id),
        **await cold_key_reads(settings),
    }


async def cold_key_reads(settings: Settings) -> dict[str, float]:
    """Wall time per event of opening a batch of events of COLD_USERS members a worker has not seen yet (its
    key cache cold, as for most members of a large fleet): each event reading its own key, and the batch's
    keys prefetched in one read first (as the processors do). Their keys are destroyed afterwards."""
    users = [str(9 * 10**17 + uuid.uuid4().int % 10**17) for _ in range(COLD_USERS)]
    guild_id, bot_id, channel_id = (str(3 * 10**18 + n) for n in range(3))
    async with user_keys(settings) as gateway_keys:
        try:
            sealed = [
                await seal_envelope(
                    chatter_envelope(n, guild_id, bot_id, channel_id, user_id),
                    gateway_keys,
                )
                for n, user_id in enumerate(users)
            ]
            async with user_keys(settings) as keys:
                began = time.monotonic()
                one_by_one = [await open_envelope(envelope, keys) for envelope in sealed]
                alone_s = time.monotonic() - began
            async with user_keys(settings) as keys:
                began = time.monotonic()
                await keys.prefetch([key_id for envelope in sealed for key_id in sealed_key_ids(envelope)])
                prefetched = [await open_envelope(envelope, keys) for envelope in sealed]
                prefetched_s = time.monotonic() - began
        finally:
            for user_id in users:
                await gateway_keys.destroy_user_keys(user_id)
    assert one_by_one == prefetched and None not in prefetched
    return {
        "open_cold_us_per_event": round(alone_s * 1e6 / COLD_USERS, 1),
        "open_cold_prefetched_us_per_event": round(prefetched_s * 1e6 / COLD_USERS, 1),
    }


def prompt_request(
    n: int, guild_id: str, bot_id: str, channel_id: str, users: Sequence[str]
) -> InferenceRequest:
    """A reply's inference request as the processors make it for chatter: a persona and 20 recent messages,
    each of another member (each sealed under its author's key), answering one more."""
    author_id = users[n % len(users)]
    recent = [
        ChatMessage(
            role="user",
            name=f"user{k}",
            content=f"user{k}: {CHATTER.format(n=n + k)}",
            author_id=users[(n + k + 1) % len(users)],
        )
        for k in range(20)
    ]
    return InferenceRequest(
        request_id=f"stage-{n}",
        event_id=f"stage-{n}",
        deployment_id=uuid.UUID(int=n),
        agent_id=uuid.UUID(int=n),
        owner_id=uuid.UUID(int=n),
        tier=Tier.free,
        lane=InferenceLane.free,
        priority=Priority.high,
        model="gpt-4o-mini",
        messages=[ChatMessage(role="system", content="You are Luna, a friendly companion. " * 10), *recent],
        target=ReplyTarget(bot_id=bot_id, guild_id=guild_id, channel_id=channel_id, author_id=author_id),
    )


async def request_sealing_cost(
    settings: Settings, guild_id: str, bot_id: str, channel_id: str
) -> dict[str, float]:
    """CPU per inference request (a 21-message prompt, 20 of its turns other members') of sealing it into its
    record's value (the processors' side) and of reading it back (decoding and opening: the worker's)."""
    users = [str(9 * 10**17 + uuid.uuid4().int % 10**17) for _ in range(50)]
    requests = [prompt_request(n, guild_id, bot_id, channel_id, users) for n in range(SEAL_REQUESTS)]
    lane = INFERENCE_LANES[InferenceLane.free]
    async with user_keys(settings) as keys:
        try:
            for user_id in users:
                await keys.data_key_for(user_id)
            began = time.process_time()
            sealed = [await lane.sealed_value(request, keys) for request in requests]
            sealing = time.process_time() - began
            began = time.process_time()
            opened = [await open_payload(lane.codec.decode(raw), lane.sealing, keys) for raw in sealed]
            opening = time.process_time() - began
        finally:
            for user_id in users:
                await keys.destroy_user_keys(user_id)
    assert opened == requests
    return {
        "request_seal_us": round(sealing * 1e6 / SEAL_REQUESTS, 1),
        "request_open_us": round(opening * 1e6 / SEAL_REQUESTS, 1),
    }


async def table_recovery(settings: Settings, guilds: int, modes: tuple[AgentMode, ...]) -> dict[str, Any]:
    """The tables' recovery from their changelogs: a worker handles STAGE_EVENTS chatter events of `modes`
    and stops; a second one starts on the same changelogs. `recovery_s` is the second worker's time from
    its start to committing a first new event of every guild, less the first worker's same time on empty
    changelogs (joining the group and starting cost both the same)."""
    stage = StageWorld(settings, stage_world(guilds, modes))
    await stage.start([entry[0] for entry in stage.world])
    try:
        start = time.monotonic()
        worker = await stage.start_worker()
        try:
            await stage.first_commits(worker)
            cold_start_s = time.monotonic() - start
            await stage.produce(STAGE_EVENTS)
            await until(stage.all_committed, time.monotonic() + START_TIMEOUT_S)
        finally:
            await stop_worker(worker)
        changelogs = await stage.changelogs()
        start = time.monotonic()
        worker = await stage.start_worker()
        try:
            await stage.first_commits(worker)
            warm_start_s = time.monotonic() - start
        finally:
            await stop_worker(worker)
    finally:
        await stage.stop()
    return {
        **changelogs,
        "cold_start_s": round(cold_start_s, 2),
        "restart_s": round(warm_start_s, 2),
        "recovery_s": round(warm_start_s - cold_start_s, 2),
    }


async def raw_kafka(bootstrap: str) -> dict[str, Any]:
    """aiokafka produce -> consume of RAW_MESSAGES 200-byte records on a topic of its own."""
    topic = f"b{uuid.uuid4().hex[:8]}.raw"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=256 * 1024)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await producer.start()
    await consumer.start()
    try:
        value = b"x" * 200
        start = time.perf_counter()
        sends = [await producer.send(topic, value) for _ in range(RAW_MESSAGES)]
        await asyncio.gather(*sends)
        produced_s = time.perf_counter() - start
        received = 0
        while received < RAW_MESSAGES:
            for records in (await consumer.getmany(timeout_ms=500, max_records=10_000)).values():
                received += len(records)
        total_s = time.perf_counter() - start
    finally:
        await consumer.stop()
        await producer.stop()
        await admin.delete_topics([topic])
        await admin.close()
    return {
        "produce_per_s": round(RAW_MESSAGES / produced_s),
        "produce_consume_per_s": round(RAW_MESSAGES / total_s),
    }


def ratio_to_raw(stage: dict[str, Any], raw: dict[str, Any]) -> float:
    """A processors stage's events/s divided by raw aiokafka's produce -> consume messages/s."""
    return round(stage["events_per_s"] / raw["produce_consume_per_s"], 3)


async def stage_rounds(settings: Settings, guilds: int, rounds: int) -> dict[str, Any]:
    """The processors stages (Mode 1, then the mix) and raw aiokafka, `rounds` times in turn: each round's
    ratios compare runs made a minute apart, and the median round of each figure is reported, the others
    beside it. (One run of each swung its ratio by half from run to run on a machine shared with the broker
    and every service.)"""
    measured = []
    for _ in range(rounds):
        mode1 = await processors_alone(settings, guilds, (AgentMode.bare,))
        mix = await processors_alone(settings, guilds, MIX)
        raw = await raw_kafka(settings.kafka_bootstrap)
        measured.append(
            {
                "mode1": mode1,
                "mix": mix,
                "raw": raw,
                "mode1_to_raw": ratio_to_raw(mode1, raw),
                "mix_to_raw": ratio_to_raw(mix, raw),
            }
        )

    def median_round(figure: str, by: Callable[[dict[str, Any]], float]) -> Any:
        ranked = sorted(measured, key=by)
        return ranked[(len(ranked) - 1) // 2][figure]

    return {
        "processors_alone_mode1": median_round("mode1", lambda r: r["mode1"]["events_per_s"]),
        "processors_alone_mix": median_round("mix", lambda r: r["mix"]["events_per_s"]),
        "raw_aiokafka": median_round("raw", lambda r: r["raw"]["produce_consume_per_s"]),
        "processors_mode1_to_raw": median_round("mode1_to_raw", lambda r: r["mode1_to_raw"]),
        "processors_mix_to_raw": median_round("mix_to_raw", lambda r: r["mix_to_raw"]),
        "stage_rounds": measured,
    }


async def end_to_end(settings: Settings, args: argparse.Namespace) -> list[dict[str, Any]]:
    namespace, schema = f"b{uuid.uuid4().hex[:8]}.", f"bench_{uuid.uuid4().hex[:12]}"
    names = ("port", "emulator-port", "api-port")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    argv = [sys.executable, "-m", "demo", "run", "--namespace", namespace, "--schema", schema]
    work_dir = Path(tempfile.mkdtemp(prefix="deep-bench-"))
    argv += ["--chat-rate", "0", "--no-sinks", "--no-playground", "--work-dir", str(work_dir)]
    argv += [arg for name, port in ports.items() for arg in (f"--{name}", str(port))]
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", "OPENAI_API_KEY")}
    demo = await asyncio.create_subprocess_exec(
        *argv, cwd=REPO_ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    steps: list[dict[str, Any]] = []
    offsets = Offsets(settings.kafka_bootstrap, namespace)
    drain: asyncio.Task[bytes] | None = None
    try:
        assert demo.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (await asyncio.wait_for(demo.stdout.readline(), START_TIMEOUT_S)).startswith(
            b"[demo] ready"
        ):
            if time.monotonic() > deadline or demo.returncode is not None:
                raise SystemExit("the demo did not start")
        drain = asyncio.create_task(demo.stdout.read())
        await offsets.start()
        api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['api-port']}", timeout=30.0)
        async with api, EmulatorControl(f"http://127.0.0.1:{ports['emulator-port']}") as control:
            schema_dsn = f"{settings.postgres_dsn}?search_path={schema}"
            guilds = await add_load_guilds(control, api, schema_dsn, args.guilds, args.members)
            await wait_until_answering(control, guilds)
            pids = children(demo.pid)
            kafka = next((s.pid for s in await stack_status(settings) if s.name == "kafka"), None)
            if kafka is not None:
                pids["broker"] = kafka
            for rate in args.rates:
                result = await step(control, guilds, offsets, pids, rate)
                steps.append(result)
                print(orjson.dumps(result).decode(), file=sys.stderr, flush=True)
                if saturated(result):
                    break
    finally:
        demo.send_signal(signal.SIGINT)
        await asyncio.wait_for(demo.wait(), 60)
        if drain is not None:
            await drain
        await offsets.stop()
        conn = await asyncpg.connect(settings.postgres_dsn)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
        await delete_namespace(settings.kafka_bootstrap, namespace)
        shutil.rmtree(work_dir, ignore_errors=True)
    return steps


async def wait_until_answering(control: EmulatorControl, guilds: list[LoadGuild]) -> None:
    """Every load bot registered /queue (Discord delivers only registered commands), is connected and answers
    it (its deployment reached the processors)."""
    deadline = time.monotonic() + START_TIMEOUT_S

    async def registered() -> bool:
        for guild in guilds:
            commands = await control.registered_commands(guild.bot_id, guild.guild_id)
            if "queue" not in {command["name"] for command in commands}:
                return False
        return True

    if not await until(registered, deadline, interval_s=0.5):
        raise SystemExit("the load bots never registered /queue")
    waiting = list(guilds)
    while waiting:
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(waiting)} load bots never answered /queue")
        probes, latencies = await probe_latencies(control, waiting, 1.0, len(waiting))
        if len(latencies) == probes:
            return
        await asyncio.sleep(1.0)


async def main(args: argparse.Namespace) -> None:
    settings = get_settings()
    if args.recovery:
        print(
            orjson.dumps(
                {"bench": "table_recovery", **await table_recovery(settings, args.guilds, MIX)}
            ).decode()
        )
        return
    steps = [] if args.stages_only else await end_to_end(settings, args)
    sustained = [s for s in steps if not saturated(s)]
    best = max(sustained, key=lambda s: s["processed_per_s"]) if sustained else None
    at_latency_rate = next((s for s in steps if s["offered_per_s"] == LATENCY_RATE_PER_S), None)
    reference = best or (steps[0] if steps else None)
    cpu_per_message = reference["cpu_us_per_message"] if reference else {}
    stages = await stage_rounds(settings, args.guilds, args.rounds)
    sealing = await sealing_cost(settings)
    figures = {
        "bench": "pipeline",
        "guilds": args.guilds,
        "steps": steps,
        "max_sustained_per_s": best["processed_per_s"] if best else None,
        f"probe_p99_ms_at_{LATENCY_RATE_PER_S}": at_latency_rate["probe_p99_ms"] if at_latency_rate else None,
        "cpu_us_per_message": cpu_per_message,
        "processors_other_threads_us": reference["processors_other_threads_us"] if reference else None,
        # CPU per message of every measured process, at the target rate, in cores.
        "cores_needed_at_target": round(sum(cpu_per_message.values()) * TARGET_PER_S / 1e6, 2),
        "target_per_s": TARGET_PER_S,
        "cpu_count": os.cpu_count(),
        # Mode 1 agents only (what the end-to-end load guilds run), then a Mode 1/3/5 mix: the AI agents'
        # conversation state (context, mood, relationships) is written to changelogs on every message.
        # Each the median of --rounds, as are raw aiokafka and the ratios to it (the rounds in
        # `stage_rounds`): machines differ and are noisy, so the ratio of a stage to raw aiokafka on the same
        # machine within a minute is the figure to compare across runs.
        **stages,
        # The mix again beside deployments holding routines (--routine-deployments): the timer's cost.
        "routine_deployments": args.routine_deployments,
        "processors_alone_mix_with_routines": (
            await processors_alone(settings, args.guilds, MIX, args.routine_deployments)
            if args.routine_deployments
            else None
        ),
        # Crypto-shredding's CPU per event, within the figures above: sealing at the gateway, opening in the
        # processors (and in every other reader of discord.events that needs the personal fields).
        **sealing,
    }
    print(orjson.dumps(figures).decode())


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: must be at least 1")
    return value


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--guilds", type=int, default=24)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument(
        "--routine-deployments", type=int, default=0, help="also run the processors stage beside this many"
    )
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=3,
        help="the processors stages and raw aiokafka this many times in turn; the medians are reported",
    )
    parser.add_argument(
        "--stages-only",
        action="store_true",
        help="only the processors stages and raw aiokafka, no end-to-end run",
    )
    parser.add_argument(
        "--recovery",
        action="store_true",
        help="only the tables' recovery from their changelogs after STAGE_EVENTS events of the mix",
    )
    parser.add_argument(
        "--rates",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[1000, 2500, 5000, 7500, 10000],
    )
    asyncio.run(main(parser.parse_args()))
