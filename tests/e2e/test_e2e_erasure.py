"""Issue 18 "Done when", end to end through the running demo platform (emulator -> gateway -> processors ->
inference -> memory writer -> sinks, the API serving the erasure and the access export):

one member ("the erased") and another ("the kept") each leave words and data in every store: messages to
Luna (context window, relationship, levels), a long-term memory, a moderator's warn, coins (/daily), a
report of Luna's answer (owner notification), analytics rows and a Parquet export. The access export holds
every planted item of the erased. The erasure, its API process killed while it runs and asked again (one
erasure), finishes with each step done once. Then every store is scanned for the erased's id, name and
words (tests/store_scan.py): every record of every topic of the demo's namespace from offset 0, the
changelogs' superseded values and deletion markers included (as stored and opened with the keys that
remain), every PostgreSQL table of the demo's schema, every Redis key, every memory of the demo's agents,
every Parquet file and every ClickHouse table: no hit. The kept member's data is untouched, and the
platform keeps answering both.

The job's resumption after a crash at each step is proven in tests/processors/test_proc_erasure_stack.py."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from demo.seed import create_operator
from emulator.openai import OpenAICompatibleServer
from emulator.openai.server import Behaviour
from jobs.parquet import export_events
from jobs.timeline import TimeWindow
from memory.store import MemoryStore, connect
from models.erasure import DataExport, Erasure, ErasureStatus, ErasureStep, ExportStatus, UserDataExport
from settings import Settings
from sinks.clickhouse.schema import ROW_TIMES
from streams.catalog import DISCORD_EVENTS, INFERENCE_LANES, INFERENCE_RESULTS
from tests.e2e.conftest import COMPLETION, Demo, demo_data_keys, demo_env, demo_world
from tests.e2e.test_e2e_platform import said_by
from tests.store_scan import (
    OPENED,
    Hit,
    Person,
    scan_clickhouse_at,
    scan_memories,
    scan_parquet,
    scan_postgres,
    scan_redis,
    scan_topics,
)
from tests.waiting import wait_until

# Starting the demo, planting two members' data and the erasure take minutes on a busy machine.
pytestmark = [pytest.mark.stack, pytest.mark.timeout(900)]

# The changelogs' compaction bound (DEEP_ERASURE_COMPACTION_MS) the demo runs with.
COMPACTION_MS = 2000
# How long the stores may take to lose the erased member after the erasure is done: the changelogs' bound
# above plus the broker's cleaner, which cleans one log at a time across every changelog of the shared broker
# (a full test run leaves hundreds); one scan of every store takes seconds on a busy machine. (A full run
# once failed a 30 s wait whose very next scan found nothing held.)
SETTLED_S = 90.0
RECALL_S = 120.0
DONE_S = 180.0
CLICKHOUSE_DATABASE = "demo"
REPORT_EMOJI = "\u26a0"

# Records that carry the erased's id in the clear by design, each documented in docs/DATA.md ("Not reached"):
# the erasure's own control record must reach every worker in the clear to say whom to erase.
CLEAR_BY_DESIGN = ("privacy.erasures",)
# Where others' sealed records may still name the erased after the erasure (docs/DATA.md, "Not reached"):
# other members' and the agents' words naming them (a moderator's "!warn @them", the bot's "Warned @them"),
# in their messages, in the prompts whose channel history holds those messages, and in the results that
# recalled Luna's memory of such a message for another member, each sealed under its author's key.
NAMED_BY_OTHERS = (
    DISCORD_EVENTS.name,
    *(lane.name for lane in INFERENCE_LANES.values()),
    INFERENCE_RESULTS.name,
)


@dataclass(frozen=True)
class Member:
    """A fresh member of the demo guild and the words only they said."""

    user_id: str
    username: str
    said: str  # to Luna
    fact: str  # a fact Luna remembers
    warned_for: str  # the reason of their warn

    @property
    def person(self) -> Person:
        return Person(self.user_id, (self.username, self.said, self.fact, self.warned_for))


@dataclass(frozen=True)
class ErasureDemo(Demo):
    operator_key: str
    work_dir: Path

    @property
    def parquet_dir(self) -> Path:
        return self.work_dir / "exports"

    def api(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.operator_key}"}
        return httpx.AsyncClient(base_url=self.running.api_url, headers=headers, timeout=30.0)


@asynccontextmanager
async def erasure_demo(stack_up: Settings, work_dir: Path) -> AsyncIterator[ErasureDemo]:
    """The demo with its sinks (an embedded ClickHouse of its own), the Parquet exports under its work dir
    and the changelogs compacted within COMPACTION_MS, answering through a scripted inference server."""
    inference = OpenAICompatibleServer(Behaviour(models=[], reply_template=COMPLETION))
    await inference.start()
    env = demo_env(
        OPENAI_BASE_URL=inference.base_url,
        OPENAI_API_KEY="test-key",
        CLICKHOUSE_URL=f"chdb://{work_dir / 'clickhouse'}",
        DEEP_PARQUET_EXPORTS_DIR=str(work_dir / "exports"),
        DEEP_ERASURE_COMPACTION_MS=str(COMPACTION_MS),
    )
    try:
        async with demo_world(stack_up, work_dir, env, sinks=True) as world:
            key = await create_operator(f"{stack_up.postgres_dsn}?search_path={world.running.schema}")
            shared = {f.name: getattr(world, f.name) for f in fields(world)}
            yield ErasureDemo(
                **shared, inference=inference, operator_key=key.get_secret_value(), work_dir=work_dir
            )
    finally:
        await inference.stop()


async def new_member(demo: Demo, name: str) -> Member:
    run = uuid.uuid4().hex[:8]
    username = f"{name}{run}"
    user = await demo.control.add_user(username)
    await demo.control.add_member(demo.guild_id, user["id"])
    return Member(
        user_id=user["id"],
        username=username,
        said=f"quasar{run} lanterns",
        fact=f"my pet lizard is called Zephyrine{run}",
        warned_for=f"spamming glorp{run}",
    )


async def remembered(store: MemoryStore, demo: Demo, member: Member) -> bool:
    memories = await store.listed(demo.deployments["Luna"], author_id=member.user_id)
    return any(member.fact.rsplit(" ", 1)[-1] in m.record.text for m in memories)


async def plant(demo: ErasureDemo, member: Member, memories: MemoryStore) -> None:
    """The member's data in every store the running platform writes."""
    luna, mod, kai = demo.bots["Luna"], demo.bots["Mod Bot"], demo.bots["Kai"]
    general = demo.channels["general"]
    control = demo.control
    # Luna answers (context, relationship, XP, analytics rows) and remembers.
    since = await demo.last_seq()
    await control.post_user_message(member.user_id, f"<@{luna}> {member.said}", general)
    answer = await demo.wait_action(since, said_by(luna, COMPLETION.split()[1]))
    await control.post_user_message(member.user_id, f"<@{luna}> {member.fact}", general)
    await wait_until(
        lambda: remembered(memories, demo, member), "Luna's memory of the fact", RECALL_S, every_s=0.5
    )
    # A moderator's warn.
    since = await demo.last_seq()
    await control.post_user_message(
        demo.users["owner"], f"!warn <@{member.user_id}> {member.warned_for}", general
    )
    await demo.wait_action(since, said_by(mod, f"Warned <@{member.user_id}>"))
    # Coins.
    since = await demo.last_seq()
    await control.invoke_command(kai, member.user_id, general, "daily")
    await demo.wait_action(since, said_by(kai, "claimed"))
    # A report of Luna's answer: a notification to her owner naming the reporter.
    await control.add_user_reaction(general, answer["payload"]["id"], member.user_id, REPORT_EMOJI)


async def export_of(demo: ErasureDemo, api: httpx.AsyncClient, member: Member) -> UserDataExport:
    asked = await api.post(f"/users/{member.user_id}/data/exports")
    assert asked.status_code == 202, asked.text

    async def finished() -> DataExport | None:
        export = DataExport.model_validate((await api.get(asked.headers["Location"])).json())
        return export if export.status is not ExportStatus.running else None

    export = await wait_until(finished, "the access export", DONE_S, every_s=0.5)
    assert export is not None
    assert export.status is ExportStatus.done, export.error
    assert export.data is not None
    return export.data


def api_pid(demo: ErasureDemo) -> int:
    """The demo's API process: `deep api serve` on the demo's API port."""
    port = demo.running.api_url.rsplit(":", 1)[1].encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue  # a process that ended meanwhile
        if b"serve" in argv and b"--port" in argv and argv[argv.index(b"--port") + 1] == port:
            return int(cmdline.parent.name)
    raise AssertionError(f"no API process on port {port.decode()}")


async def asked_again(api: httpx.AsyncClient, member: Member) -> httpx.Response | None:
    """The erasure asked for again, once the API answers."""
    try:
        response = await api.delete(f"/users/{member.user_id}/data")
    except httpx.TransportError:
        return None
    assert response.status_code == 202, response.text
    return response


def holds(section: Any, *texts: str) -> bool:
    dumped = orjson.dumps(section, default=str).decode()
    return all(text in dumped for text in texts)


def assert_export_holds_everything(export: UserDataExport, member: Member) -> None:
    tables = export.tables
    assert holds(tables.get("context"), member.said, member.fact), tables.keys()
    assert {"relationships", "levels", "leaderboards", "warns", "wallets"} <= set(tables), tables.keys()
    assert holds(tables["warns"], member.warned_for)
    assert holds(export.memories, member.fact.rsplit(" ", 1)[-1])
    assert holds(export.events, member.said, member.fact, member.username)
    assert holds(export.parquet, member.said)
    assert {"events", "decisions", "moderation_audit"} <= set(export.analytics), export.analytics.keys()
    assert holds(export.postgres.get("owner_notifications"), member.user_id)


async def scan_every_store(
    demo: ErasureDemo, person: Person, memories: MemoryStore, redis: Redis
) -> dict[str, list[Hit]]:
    """Every store but ClickHouse (its engine is the sinks process's while the demo runs), by store."""
    settings = demo.settings
    async with demo_data_keys(settings, demo.running.schema) as keys:
        topics = await scan_topics(settings.kafka_bootstrap, demo.namespace, person, keys, CLEAR_BY_DESIGN)
        parquet = await scan_parquet(demo.parquet_dir, person, keys)
    return {
        "kafka": topics,
        "postgres": await scan_postgres(settings.postgres_dsn, demo.running.schema, person),
        "redis": await scan_redis(redis, person),
        "weaviate": await scan_memories(memories.client, demo.deployments.values(), person),
        "parquet": parquet,
    }


def report(hits: dict[str, list[Hit]]) -> str:
    """The hits by store, topic or table (without offsets or row numbers), field and needle, counted."""
    counted = Counter(
        f"{hit.store} {hit.where.split('[')[0].split('#')[0]} ({hit.field}): {hit.needle!r}"
        for found in hits.values()
        for hit in found
    )
    return "\n".join(f"{count} x {place}" for place, count in counted.most_common())


def held(hits: dict[str, list[Hit]]) -> dict[str, list[Hit]]:
    """The hits but those in others' sealed records (store_scan.OPENED)."""
    return {store: [hit for hit in found if hit.field != OPENED] for store, found in hits.items()}


async def test_a_member_is_erased_from_every_store_and_the_platform_keeps_answering(
    stack_up: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    work_dir = tmp_path_factory.mktemp("e2e-erasure")
    redis = Redis.from_url(stack_up.redis_url)
    client = connect(stack_up)
    await client.connect()
    memories = MemoryStore(client)
    try:
        async with erasure_demo(stack_up, work_dir) as demo, demo.api() as api:
            erased, kept = await new_member(demo, "erin"), await new_member(demo, "kit")
            await asyncio.gather(plant(demo, erased, memories), plant(demo, kept, memories))
            async with demo_data_keys(stack_up, demo.running.schema) as keys:
                await export_events(
                    stack_up.kafka_bootstrap,
                    demo.namespace,
                    TimeWindow(),
                    demo.parquet_dir / "events",
                    keys,
                    content_guilds=frozenset({demo.guild_id}),
                )
            before = await scan_every_store(demo, erased.person, memories, redis)
            # Redis holds no one's id or words: the response cache is keyed by prompt digests and holds
            # completions (shared by every test on this Redis and emptied by any erasure: its erasure is
            # checked in tests/processors/test_proc_erasure_stack.py).
            assert {store for store, hits in before.items() if hits} == set(before) - {"redis"}, report(
                before
            )

            assert_export_holds_everything(await export_of(demo, api, erased), erased)

            asked = await api.delete(f"/users/{erased.user_id}/data")
            assert asked.status_code == 202, asked.text
            first = Erasure.model_validate(asked.json())
            # The API process dies while the erasure runs; the demo restarts it, and asking again (or the
            # API's start) resumes the same erasure.
            os.kill(api_pid(demo), signal.SIGKILL)
            again = await wait_until(lambda: asked_again(api, erased), "the API back", DONE_S, every_s=0.5)
            assert again is not None and Erasure.model_validate(again.json()).erasure_id == first.erasure_id

            async def finished() -> Erasure | None:
                erasure = Erasure.model_validate((await api.get(asked.headers["Location"])).json())
                return erasure if erasure.status is ErasureStatus.done else None

            done = await wait_until(finished, "the erasure", DONE_S, every_s=0.5)
            assert done is not None and done.user_id is None
            # Each step done once, killed or not.
            assert sorted(record.step for record in done.steps) == sorted(ErasureStep)

            # Every changelog record holding the erased (superseded values, deletion markers) is gone within
            # twice COMPACTION_MS of the acknowledgements (the compaction markers) and the cleaner's back-off.
            async def clean() -> dict[str, list[Hit]] | None:
                hits = await scan_every_store(demo, erased.person, memories, redis)
                return hits if not any(held(hits).values()) else None

            try:
                left = await wait_until(clean, "no store holding the erased member", SETTLED_S, every_s=2.0)
            except AssertionError:
                left = await scan_every_store(demo, erased.person, memories, redis)
                pytest.fail(f"the erased member is still held:\n{report(held(left))}")
            assert left is not None
            named_by_others = {h.where.split("[")[0] for h in left["kafka"]} - {
                f"{demo.namespace}{topic}" for topic in NAMED_BY_OTHERS
            }
            assert named_by_others == set(), report(left)

            # The kept member's data is untouched.
            kept_export = await export_of(demo, api, kept)
            assert_export_holds_everything(kept_export, kept)
            kept_hits = await scan_every_store(demo, kept.person, memories, redis)
            assert {store for store, hits in kept_hits.items() if hits} == set(kept_hits) - {"redis"}

            # The platform keeps answering both; the erased's new words are theirs again from here.
            written_again = datetime.now(UTC)
            luna = demo.bots["Luna"]
            for member in (erased, kept):
                since = await demo.last_seq()
                await demo.control.post_user_message(
                    member.user_id, f"<@{luna}> hello again", demo.channels["general"]
                )
                await demo.wait_action(since, said_by(luna, COMPLETION.split()[1]))
        # The demo is stopped: its ClickHouse engine can be opened here. What the erased said after the
        # erasure is theirs again, so only the rows from before it are scanned.
        before_written_again = {
            table: f"{column} < toDateTime64('{written_again:%Y-%m-%d %H:%M:%S}', 3, 'UTC')"
            for table, column in ROW_TIMES.items()
        }
        engine = work_dir / "clickhouse"
        erased_rows = await scan_clickhouse_at(
            engine, CLICKHOUSE_DATABASE, erased.person, before_written_again
        )
        assert erased_rows == [], "\n".join(map(str, erased_rows))
        assert await scan_clickhouse_at(engine, CLICKHOUSE_DATABASE, kept.person, before_written_again)
    finally:
        await client.close()
        await redis.aclose()
