"""`run_demo()`: the whole platform on this machine, in a demo world, with a browser playground.

On a running stack (Kafka, PostgreSQL, Redis) it starts the Discord emulator, the configuration API, the
stream processors, an inference worker, the sinks and a gateway runner as child processes; seeds the world
(a server with members and one bot per agent) and the control plane (an owner, the bots' tokens, the agents
and their deployments) through the same APIs a person uses; starts a gentle simulated chat; and serves the
playground. Ctrl-C stops everything it started.

The demo keeps to a world of its own: a topic namespace, a PostgreSQL schema (emptied on every start) and
a ClickHouse database, so its gateway runner never sees a real deployment's bot tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import itertools
import os
import random
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from demo.music import demo_library
from demo.options import DemoError, DemoOptions
from demo.playground.agents import ApiAgents
from demo.playground.live import LiveFeed, LiveState, Names
from demo.playground.room import DemoRoom
from demo.playground.server import Playground, ai_view, create_app, serve
from demo.playground.views import AgentView, ProcessView
from demo.processes import ChildFailed, ChildSpec, Supervisor
from demo.seed import DemoWorld, create_operator, reset_schema, seed_emulator, seed_platform
from demo.world import WorldIds, allocate_ids, chat_line
from emulator.discord import EmulatorControl, EmulatorError
from emulator.mediawiki import MediaWikiServer
from gateways.autocomplete import library_titles
from infra.stack.clickhouse import engine_holder
from models.commands import agent_commands
from processors.table_catalog import PROCESSORS_APP_ID
from settings import Settings, get_settings
from streams.admin import apply_catalog
from vault.user_keys import user_keys

READY_TIMEOUT_S = 90.0
POLL_S = 0.25


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def child_env(settings: Settings, options: DemoOptions, wiki_url: str, music: Path) -> dict[str, str]:
    """The children's environment: the demo's namespace and schema, Discord pointed at the emulator, the
    knowledge tool at `wiki_url`, /play at the `music` library."""
    env = dict(os.environ)
    env.update(
        DEEP_STATE_DIR=str(settings.state_dir),
        DEEP_TOPIC_NAMESPACE=options.namespace,
        # asyncpg reads server settings from the DSN's query: every connection lands in the demo's schema.
        POSTGRES_DB=f"{settings.postgres_db}?search_path={options.schema}",
        DISCORD_API_BASE=f"http://{options.host}:{options.emulator_port}/api/v10",
        DISCORD_GATEWAY_URL=f"ws://{options.host}:{options.emulator_port}/",
        # The owner console signs in with the emulator's OAuth2 (its consent page and token endpoint).
        DISCORD_OAUTH_URL=f"http://{options.host}:{options.emulator_port}",
        DEEP_API_HOST=options.host,
        DEEP_API_PORT=str(options.api_port),
        WIKIPEDIA_URL=wiki_url,
        DEEP_MUSIC_LIBRARY=str(music),
        PYTHONUNBUFFERED="1",
    )
    # The runner points each bot's application at the receiver; unset, interactions come over the gateway.
    env.pop("DEEP_INTERACTIONS_URL", None)
    if options.interactions_endpoint:
        env["DEEP_INTERACTIONS_URL"] = f"http://{options.host}:{options.interactions_port}"
    return env


def child_specs(
    settings: Settings, options: DemoOptions, work_dir: Path, wiki_url: str
) -> dict[str, ChildSpec]:
    # The configured music library when it has tracks, else the demo's generated one.
    configured = settings.music_library_dir
    music = configured if library_titles(configured) else demo_library(work_dir / "music")
    env = child_env(settings, options, wiki_url, music)
    python = sys.executable
    deep = str(Path(python).with_name("deep"))
    host = options.host

    def spec(name: str, *argv: str, restart: bool = True, stop_last: bool = False) -> ChildSpec:
        return ChildSpec(name, argv, env, work_dir, restart=restart, stop_last=stop_last)

    specs = {
        # The world lives in the emulator's memory: a restart could not bring it back.
        "emulator": spec(
            "emulator",
            deep,
            "emulator",
            "--host",
            host,
            "--port",
            str(options.emulator_port),
            restart=False,
            stop_last=True,
        ),
        "api": spec("api", deep, "api", "serve", "--host", host, "--port", str(options.api_port)),
        # Each restartable consumer has a stable group instance id: a restart takes its partitions straight
        # back instead of waiting out the crashed process's session.
        # The worker's table data directory goes under work_dir, its cwd.
        "processors": spec("processors", python, "-m", "processors.cli", "--instance-id", "demo-processors"),
        "inference": spec(
            "inference",
            deep,
            "inference",
            "--group",
            f"{options.namespace}deep-inference",
            "--instance-id",
            "demo-inference",
        ),
        "memory": spec("memory", deep, "memory", "writer", "--instance-id", "demo-memory"),
        "gateway": spec(
            "gateway",
            python,
            "-m",
            "gateways",
            "--runner-id",
            "demo-gateway",
            "--instance-id",
            "demo-gateway",
            "--roster-interval-s",
            "1",
        ),
    }
    if options.interactions_endpoint:
        specs["interactions"] = spec(
            "interactions",
            python,
            "-m",
            "gateways",
            "interactions",
            "--host",
            host,
            "--port",
            str(options.interactions_port),
        )
    if options.sinks:
        specs["sinks"] = spec("sinks", deep, "sinks", "--database", options.clickhouse_database)
    return specs


async def _stack_reachable(settings: Settings) -> None:
    for service, host, port in (
        ("Kafka", settings.kafka_host, settings.kafka_port),
        ("PostgreSQL", settings.postgres_host, settings.postgres_port),
        ("Redis", settings.redis_host, settings.redis_port),
    ):
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 3.0)
        except (OSError, TimeoutError):
            raise DemoError(
                f"{service} is not reachable at {host}:{port}: "
                "start the stack first (`make stack` or `deep stack up`)"
            ) from None
        writer.close()


Check = Callable[[], Awaitable[bool]]


async def wait_for(
    what: str, check: Check, supervisor: Supervisor, timeout_s: float = READY_TIMEOUT_S
) -> None:
    """Poll `check` until it is true. A child that dies for good, or the timeout, fails the start."""
    deadline = time.monotonic() + timeout_s
    while True:
        failed = supervisor.failure()
        if failed.done():
            raise ChildFailed(failed.result())
        with contextlib.suppress(OSError, httpx.HTTPError, EmulatorError, KafkaError):
            if await check():
                return
        if time.monotonic() > deadline:
            logs = ", ".join(str(c.log_path) for c in supervisor.children.values())
            raise DemoError(f"{what}: not ready after {timeout_s:.0f} s (logs: {logs})")
        await asyncio.sleep(POLL_S)


async def group_stable(admin: AIOKafkaAdminClient, group_id: str) -> bool:
    """The consumer group has members and finished its rebalance."""
    response = (await admin.describe_consumer_groups([group_id]))[0]
    # DescribeGroupsResponse rows: (error_code, group_id, state, protocol_type, protocol, members, ...).
    _, _, state, _, _, members, *_ = response.groups[0]
    return bool(state == "Stable" and members)


async def chatter(control: EmulatorControl, ids: WorldIds, rate_per_s: float, seed: int) -> None:
    """Simulated members talking, about one message every 1/rate seconds, in varied channels and words."""
    rng = random.Random(seed)
    for n in itertools.count():
        await asyncio.sleep(rng.uniform(0.5, 1.5) / rate_per_s)
        line = chat_line(ids, n, seed)
        with contextlib.suppress(EmulatorError, aiohttp.ClientError, OSError):
            await control.post_user_message(line.author.user_id, line.content, line.channel.channel_id)


def agent_views(world: DemoWorld) -> list[AgentView]:
    return [
        AgentView(
            deployment_id=a.deployment_id,
            agent_id=a.agent_id,
            bot_id=a.bot_id,
            guild_id=world.ids.guild_id,
            name=a.plan.name,
            config=a.config,
            editable=True,
        )
        for a in world.agents
    ]


def process_views(supervisor: Supervisor) -> list[ProcessView]:
    return [
        ProcessView(name=name, running=c.running, pid=c.pid, restarts=len(c.restarts), log=str(c.log_path))
        for name, c in supervisor.children.items()
    ]


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _start_playground(
    resources: contextlib.AsyncExitStack,
    options: DemoOptions,
    settings: Settings,
    http: httpx.AsyncClient,
    control: EmulatorControl,
    world: DemoWorld,
    supervisor: Supervisor,
) -> DemoRoom:
    """The playground page and the live feed behind it; both stop with `resources`."""
    names = Names()
    room = DemoRoom(control, world, names)
    state = LiveState({a.deployment_id: a.bot_id for a in world.agents}, {world.ids.guild_id}, names)
    # The demo's users' data keys are in the demo's schema.
    keys = await resources.enter_async_context(
        user_keys(dataclasses.replace(settings, postgres_schema=options.schema))
    )
    feed = LiveFeed(state, settings.kafka_bootstrap, options.namespace, keys)
    await feed.start()
    resources.push_async_callback(feed.stop)
    agents = ApiAgents(http, world.owner_id, world.owner_key, agent_views(world))
    processes = functools.partial(process_views, supervisor)
    app = create_app(Playground("demo", ai_view(settings), agents, state, room, processes))
    playground = await serve(app, options.host, options.playground_port)
    resources.push_async_callback(playground.cleanup)
    return room


async def _run(options: DemoOptions, settings: Settings) -> None:
    """Start, seed and serve; runs until cancelled (Ctrl-C) or a child fails for good, then stops all."""
    options.check()
    started = time.monotonic()
    work_dir = options.work_dir or settings.state_dir / "demo"
    work_dir.mkdir(parents=True, exist_ok=True)
    await _stack_reachable(settings)
    say(f"topic namespace {options.namespace!r}, PostgreSQL schema {options.schema!r} (emptied)")
    await apply_catalog(settings.kafka_bootstrap, options.namespace)
    await reset_schema(settings.postgres_dsn, options.schema)
    # Offline unless WIKIPEDIA_URL names a wiki: the knowledge tool answers from the stand-in's articles.
    wiki = None if settings.wikipedia_url else await MediaWikiServer(host=options.host).start()
    wiki_url = wiki.url_template if wiki is not None else settings.wikipedia_url
    specs = child_specs(settings, options, work_dir, wiki_url)
    holder = None if settings.clickhouse_url else engine_holder(settings.clickhouse_path)
    if "sinks" in specs and holder is not None:
        say(f"sinks left out: process {holder} holds the embedded ClickHouse engine (one process at a time)")
        del specs["sinks"]
    supervisor = Supervisor(work_dir / "logs", say)
    emulator_url = f"http://{options.host}:{options.emulator_port}"
    api_url = f"http://{options.host}:{options.api_port}"
    try:
        for name in ("emulator", "api", "processors", "inference", "memory", "sinks", "interactions"):
            if name in specs:
                await supervisor.start(specs[name])
        say(f"started {', '.join(supervisor.children)}; logs in {supervisor.log_dir}")
        # Everything entered here is left in reverse order, before the children stop.
        async with contextlib.AsyncExitStack() as resources:
            http = await resources.enter_async_context(httpx.AsyncClient(base_url=api_url, timeout=30.0))
            control = await resources.enter_async_context(EmulatorControl(emulator_url))
            admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
            await admin.start()
            resources.push_async_callback(admin.close)

            async def emulator_up() -> bool:
                return (await control.health())["status"] == "ok"

            async def api_up() -> bool:
                return (await http.get("/healthz")).status_code == 200

            await wait_for("the Discord emulator", emulator_up, supervisor)
            ids = allocate_ids()
            tokens = await seed_emulator(control, ids)
            await wait_for("the configuration API", api_up, supervisor)
            schema_dsn = f"{settings.postgres_dsn}?search_path={options.schema}"
            world = await seed_platform(http, await create_operator(schema_dsn), ids, tokens)
            del tokens  # in the vault now; nothing here needs them any more
            say(f"seeded: {len(ids.members)} members, agents {', '.join(a.plan.name for a in world.agents)}")
            await supervisor.start(specs["gateway"])

            async def bots_connected() -> bool:
                stats = [await control.stats(a.bot_id) for a in world.agents]
                return all(s["connected_sessions"] > 0 for s in stats)

            async def endpoints_set() -> bool:
                # Discord saves an endpoint only once the receiver answered its verifying PING.
                stats = [await control.stats(a.bot_id) for a in world.agents]
                return all(s["interactions_endpoint_url"] for s in stats)

            async def commands_registered() -> bool:
                # Discord delivers only registered commands: the demo is ready once every bot's are.
                for agent in world.agents:
                    registered = await control.registered_commands(agent.bot_id, ids.guild_id)
                    if {c["name"] for c in registered} != {c.name for c in agent_commands(agent.config)}:
                        return False
                return True

            async def workers_ready() -> bool:
                groups = (f"{options.namespace}{PROCESSORS_APP_ID}", f"{options.namespace}deep-inference")
                return all([await group_stable(admin, group) for group in groups])

            await wait_for("the bots' gateway connections", bots_connected, supervisor)
            await wait_for("the bots' slash commands", commands_registered, supervisor)
            if options.interactions_endpoint:
                await wait_for("the bots' interactions endpoint", endpoints_set, supervisor)
            await wait_for("the processors and the inference worker", workers_ready, supervisor)

            background = []
            if options.playground:
                room = await _start_playground(resources, options, settings, http, control, world, supervisor)
                background.append(asyncio.create_task(room.run(), name="room"))
            if options.chat_rate_per_s > 0:
                talk = chatter(control, ids, options.chat_rate_per_s, seed=0)
                background.append(asyncio.create_task(talk, name="chatter"))
            resources.push_async_callback(_cancel, background)

            say(f"ready in {time.monotonic() - started:.1f} s")
            if options.playground:
                say(f"playground: http://{options.host}:{options.playground_port}")
            say(
                f"Discord emulator: {emulator_url} (control API /_control), configuration API: {api_url}/docs"
            )
            say(f"owner console: {api_url}/console/ (sign in with Discord: the emulator's consent page)")
            say(f"AI: {ai_view(settings).description}; knowledge: {wiki_url.format(lang='en')}")
            say("Ctrl-C stops everything")
            raise ChildFailed(await supervisor.failure())
    finally:
        say("stopping")
        await supervisor.stop()
        if wiki is not None:
            await wiki.stop()
        say("stopped")


def run_demo(options: DemoOptions | None = None) -> None:
    """Run the demo until Ctrl-C or SIGTERM. Raises DemoError (with what to do) when it cannot start or a
    process of the platform keeps failing."""
    settings = get_settings()

    async def main() -> None:
        demo = asyncio.current_task()
        assert demo is not None
        loop = asyncio.get_running_loop()
        # Ctrl-C cancels the demo wherever it is, starting or running; its cleanup stops the children.
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, demo.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await _run(options or DemoOptions(), settings)

    try:
        asyncio.run(main())
    except ChildFailed as failure:
        raise DemoError(str(failure)) from None
