"""End-to-end fixtures: `python -m demo run` (no chatter, no sinks) in its own topic namespace, PostgreSQL
schema and ports, with an OpenAI-compatible server started here as the inference workers' endpoint (`demo`:
one shared by the modules marked `shared_demo`), or with no endpoint configured, answering through the
embedded model server (`demo_world`).

The tests drive the demo world through the Discord emulator's control API and read the demo's topics."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from emulator.discord import EmulatorControl
from emulator.openai import OpenAICompatibleServer
from emulator.openai.server import Behaviour
from models.events import EventEnvelope
from settings import Settings
from streams.catalog import TopicSpec
from streams.sealing import open_envelope, open_payload
from tests.clock_file import set_clock
from tests.demo.test_demo_browser import RunningDemo, launched_demo
from vault.keyring import load_keyring
from vault.user_keys import UserKeyStore

# The clocked world's test clock (DEEP_CLOCK_FILE) starts at the wall clock's hour.
CLOCK_START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
# How long an answer may take through gateway, Kafka, processors, inference and back, on a busy machine.
ANSWER_S = 45.0
# What the inference server answers every request with: distinctive enough to find in Luna's styled reply.
COMPLETION = "the nebula glows softly tonight"
ENDPOINT_VARIABLES = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "INFERENCE_ENDPOINTS")

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """The running demo world: where its services listen and who is in it."""

    running: RunningDemo
    control: EmulatorControl
    settings: Settings
    guild_id: str
    channels: dict[str, str]  # text channel name -> id
    users: dict[str, str]  # username -> user id (members, "you" and "owner")
    bots: dict[str, str]  # agent name -> bot user id
    deployments: dict[str, uuid.UUID]  # agent name -> deployment id

    @property
    def namespace(self) -> str:
        return self.running.namespace

    async def wait_action(
        self, since: int, match: Callable[[dict[str, Any]], bool], timeout_s: float = ANSWER_S
    ) -> dict[str, Any]:
        """The first action the emulator recorded after `since` that matches."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for action in await self.control.actions(since=since):
                if match(action):
                    return action
            await asyncio.sleep(0.2)
        raise AssertionError(f"no matching action in {timeout_s:.0f} s\n{self.running.explain()}")

    async def last_seq(self) -> int:
        actions = await self.control.actions(since=0)
        return int(actions[-1]["seq"]) if actions else 0

    async def wait_record(
        self,
        spec: TopicSpec,
        match: Callable[[Any], bool],
        timeout_s: float = ANSWER_S,
        as_stored: bool = False,
    ) -> Any:
        """The first record of the demo's `spec` topic, from the beginning, whose decoded value matches;
        `as_stored`: with its sealed parts left sealed, as the broker holds it."""
        found = await self.read_records(spec, match, timeout_s, first=True, as_stored=as_stored)
        if not found:
            raise AssertionError(f"no matching record on {spec.name_in(self.namespace)} in {timeout_s:.0f} s")
        return found[0]

    async def read_records(
        self,
        spec: TopicSpec,
        match: Callable[[Any], bool],
        timeout_s: float,
        first: bool = False,
        as_stored: bool = False,
    ) -> list[Any]:
        """Matching records of the topic from the beginning, read for `timeout_s` (or to the first one), their
        sealed parts opened with the demo's data keys (a record of an erased user is skipped) unless
        `as_stored`."""
        consumer = AIOKafkaConsumer(
            spec.name_in(self.namespace),
            bootstrap_servers=self.settings.kafka_bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        found: list[Any] = []
        try:
            async with demo_data_keys(self.settings, self.running.schema) as keys:
                deadline = time.monotonic() + timeout_s
                while time.monotonic() < deadline:
                    batches = await consumer.getmany(timeout_ms=200)
                    for records in batches.values():
                        for record in records:
                            decoded = spec.codec.decode(record.value)
                            value = decoded if as_stored else await opened(decoded, spec, keys)
                            if value is not None and match(value):
                                found.append(value)
                    if first and found:
                        break
        finally:
            await consumer.stop()
        return found


@dataclass(frozen=True)
class Demo(World):
    """The demo world answering through a scripted OpenAI-compatible server."""

    inference: OpenAICompatibleServer


def message_text(payload: dict[str, Any] | None) -> str:
    """A message's or interaction response's visible text: its content and its embeds' text."""
    if not payload:
        return ""
    parts = [str(payload.get("content") or "")]
    for embed in payload.get("embeds") or []:
        parts += [str(embed.get("title") or ""), str(embed.get("description") or "")]
    return "\n".join(p for p in parts if p)


@asynccontextmanager
async def demo_world(
    stack_up: Settings, work_dir: Path, env: dict[str, str], *, sinks: bool = False
) -> AsyncIterator[World]:
    """`python -m demo run` without chatter (and without sinks unless asked), in its own namespace, schema
    and ports."""
    args = ["--chat-rate", "0"] + ([] if sinks else ["--no-sinks"])
    async with launched_demo(stack_up, work_dir, env, args, schema_prefix="test_e2e") as running:
        async with httpx.AsyncClient(base_url=running.url) as playground:
            session = (await playground.get("/api/session")).json()
        async with EmulatorControl(running.emulator_url) as control:
            world = await control.world()
            guild = world["guilds"][0]
            users = {u["username"]: u["id"] for u in world["users"]}
            # The guild's owner is the emulator's system user: made a member so that it can speak.
            users["owner"] = guild["owner_id"]
            await control.add_member(guild["id"], guild["owner_id"])
            yield World(
                running=running,
                control=control,
                settings=stack_up,
                guild_id=guild["id"],
                channels={c["name"]: c["id"] for c in guild["channels"] if c["type"] == 0},
                users=users,
                bots={b["username"]: b["id"] for b in world["bots"]},
                deployments={a["name"]: uuid.UUID(a["deployment_id"]) for a in session["agents"]},
            )


def demo_env(**settings: str) -> dict[str, str]:
    """This process's environment without any inference endpoint, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if k not in ENDPOINT_VARIABLES and k != "CLICKHOUSE_URL"}
    return {**env, **settings}


@asynccontextmanager
async def scripted_demo(stack_up: Settings, work_dir: Path) -> AsyncIterator[Demo]:
    """The demo world answering through an OpenAI-compatible server that serves any model and completes every
    request with COMPLETION."""
    async with OpenAICompatibleServer(Behaviour(models=[], reply_template=COMPLETION)) as inference:
        env = demo_env(OPENAI_BASE_URL=inference.base_url, OPENAI_API_KEY="test-key")
        async with demo_world(stack_up, work_dir, env) as world:
            yield Demo(**{f.name: getattr(world, f.name) for f in fields(world)}, inference=inference)


class SharedDemo:
    """One scripted demo for the modules marked `shared_demo`: started by the first of them and stopped after
    the last (starting a demo takes 15-20 s on two cores)."""

    def __init__(self) -> None:
        self._resources = AsyncExitStack()
        self._demo: Demo | None = None

    async def started(self, stack_up: Settings, work_dir: Callable[[], Path]) -> Demo:
        if self._demo is None:
            self._demo = await self._resources.enter_async_context(scripted_demo(stack_up, work_dir()))
        return self._demo

    async def stop(self) -> None:
        self._demo = None
        await self._resources.aclose()


def on_shared_demo(node: pytest.Item | pytest.Collector) -> bool:
    return node.get_closest_marker("shared_demo") is not None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """This package's modules on the shared demo run first, one after another: it is started once and
    stopped before the other modules start demos of their own."""
    here = Path(__file__).parent
    positions = [n for n, item in enumerate(items) if item.path.parent == here]
    package = sorted((items[n] for n in positions), key=lambda item: not on_shared_demo(item))
    for n, item in zip(positions, package, strict=True):
        items[n] = item


@pytest.fixture(scope="package")
async def shared_demos() -> AsyncIterator[SharedDemo]:
    shared = SharedDemo()
    try:
        yield shared
    finally:
        await shared.stop()


@pytest.fixture(scope="module")
async def demo(
    shared_demos: SharedDemo,
    stack_up: Settings,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Demo]:
    """A scripted demo of the module's own or, for a module marked `shared_demo`, the one shared with the
    other such modules."""
    if not on_shared_demo(request.node):
        async with scripted_demo(stack_up, tmp_path_factory.mktemp("e2e-demo")) as own:
            yield own
        return
    yield await shared_demos.started(stack_up, lambda: tmp_path_factory.mktemp("e2e-shared-demo"))
    items = request.session.items
    last = max(n for n, item in enumerate(items) if getattr(item, "module", None) is request.module)
    if not any(on_shared_demo(item) for item in items[last + 1 :]):
        await shared_demos.stop()


@pytest.fixture(scope="module")
def clock(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test clock's file, at CLOCK_START; a test moves it with `set_clock`."""
    path = tmp_path_factory.mktemp("clock") / "now"
    set_clock(path, CLOCK_START)
    return path


@pytest.fixture(scope="module")
async def world(
    stack_up: Settings, tmp_path_factory: pytest.TempPathFactory, clock: Path, request: pytest.FixtureRequest
) -> AsyncIterator[World]:
    """The demo world on the test clock, answering through the embedded model server (a module may define
    its own `world`)."""
    env = demo_env(DEEP_CLOCK_FILE=str(clock))
    work_dir = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    async with demo_world(stack_up, work_dir, env) as running:
        yield running


@asynccontextmanager
async def demo_data_keys(settings: Settings, schema: str) -> AsyncIterator[UserKeyStore]:
    """A demo's data keys (its schema, its key ring), as its services use them, to open sealed records."""
    dsn = f"{settings.postgres_dsn}?search_path={schema}"
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    store = UserKeyStore(pool, load_keyring(settings))
    await store.listen(dsn)
    try:
        yield store
    finally:
        await store.close()
        await pool.close()


async def opened(value: Any, spec: TopicSpec, keys: UserKeyStore) -> Any:
    """A record of `spec` as its consumers read it: sealed parts opened, None when its subject was erased."""
    if isinstance(value, EventEnvelope):
        return await open_envelope(value, keys)
    return await open_payload(value, spec.sealing, keys)
