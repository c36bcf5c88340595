"""A sink killed mid-run and restarted leaves every record in ClickHouse exactly once.

The sinks run in a subprocess against their own embedded engine (DEEP_STATE_DIR under tmp_path): the engine
is single-process, so this test reads it through `sink_process query` once the sinks have stopped. Three
runs: the first kills itself (SIGKILL) right after an events insert and before its offsets are committed,
the worst moment; the second is SIGKILLed by the test while a second wave of records flows; the third runs
to the end of the topics and stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from settings import MAX_ANALYTICS_DAYS, REPO_ROOT, Settings
from sinks.batch import PLAN_PREFIX
from sinks.clickhouse.schema import DEFAULT_DATABASE
from sinks.consumer import sink_group
from sinks.tables import ACTIONS, DECISIONS, EVENTS
from streams.catalog import AGENT_DECISIONS, DISCORD_ACTIONS, DISCORD_EVENTS
from tests.analytics.factories import T0, conversation, produce

pytestmark = pytest.mark.stack

WAVE = 2000


class SinkProcesses:
    def __init__(self, namespace: str, tmp_path: Path) -> None:
        # Their own embedded engine, whatever this process uses: CLICKHOUSE_URL empty, state under tmp_path.
        state = str(tmp_path / "state")
        self.env = {
            **os.environ,
            "DEEP_STATE_DIR": state,
            "DEEP_TOPIC_NAMESPACE": namespace,
            "CLICKHOUSE_URL": "",
            # The rows are dated from T0, months back: a retention shorter than that would age them out.
            "DEEP_RETENTION_ANALYTICS_DAYS": str(MAX_ANALYTICS_DAYS),
        }
        self.log = tmp_path / "sinks.log"
        self.started: list[asyncio.subprocess.Process] = []

    async def start(self, *args: str) -> asyncio.subprocess.Process:
        with self.log.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.analytics.sink_process",
                *args,
                cwd=REPO_ROOT,
                env=self.env,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        self.started.append(process)
        return process

    async def kill_all(self) -> None:
        for process in self.started:
            if process.returncode is None:
                process.kill()
                await process.wait()

    async def finished(self, process: asyncio.subprocess.Process, timeout_s: float = 60) -> int:
        try:
            async with asyncio.timeout(timeout_s):
                return await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
            pytest.fail(f"sink process did not finish; log:\n{self.log.read_text()[-3000:]}")

    async def query(self, *sql: str) -> list[list[list[object]]]:
        process = await self.start("query", *sql)
        out, _ = await process.communicate()
        assert process.returncode == 0, self.log.read_text()[-3000:]
        return json.loads(out)


async def committed(admin: AIOKafkaAdminClient, group: str) -> dict[int, tuple[int, str]]:
    offsets = await admin.list_consumer_group_offsets(group)
    return {tp.partition: (meta.offset, meta.metadata) for tp, meta in offsets.items() if meta.offset >= 0}


async def committed_total(admin: AIOKafkaAdminClient, group: str) -> int:
    return sum(offset for offset, _ in (await committed(admin, group)).values())


async def wait_for(admin: AIOKafkaAdminClient, group: str, at_least: int, timeout_s: float = 60) -> None:
    """Until the group has committed at least `at_least` records (polling the broker: nothing to wait on)."""
    async with asyncio.timeout(timeout_s):
        while await committed_total(admin, group) < at_least:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def produce_wave(producer: AIOKafkaProducer, namespace: str, first: int) -> tuple[int, int, int]:
    events, decisions, actions = conversation(first, WAVE, T0 + timedelta(minutes=first // WAVE))
    await produce(producer, namespace, DISCORD_EVENTS, events)
    await produce(producer, namespace, AGENT_DECISIONS, decisions)
    await produce(producer, namespace, DISCORD_ACTIONS, actions)
    return len(events), len(decisions), len(actions)


@pytest.fixture
async def sinks(namespace: str, tmp_path: Path) -> AsyncIterator[SinkProcesses]:
    processes = SinkProcesses(namespace, tmp_path)
    yield processes
    await processes.kill_all()


async def test_a_killed_sink_restarted_inserts_every_record_once(
    stack_up: Settings,
    namespace: str,
    producer: AIOKafkaProducer,
    admin: AIOKafkaAdminClient,
    sinks: SinkProcesses,
) -> None:
    groups = {table.table: sink_group(namespace, table) for table in (EVENTS, DECISIONS, ACTIONS)}
    first_wave = await produce_wave(producer, namespace, 0)

    crashed = await sinks.start("sinks", "--crash-after-inserts", "2")
    assert await sinks.finished(crashed) == -signal.SIGKILL
    # It died between an insert and its commit: a plan is recorded and the offsets stop short of it.
    plans = [
        meta
        for _, meta in (await committed(admin, groups["events"])).values()
        if meta.startswith(PLAN_PREFIX)
    ]
    assert plans
    assert await committed_total(admin, groups["events"]) < WAVE

    restarted = await sinks.start("sinks")
    await wait_for(admin, groups["events"], WAVE)
    second_wave = await produce_wave(producer, namespace, WAVE)
    await wait_for(admin, groups["events"], WAVE + 1)
    restarted.send_signal(signal.SIGKILL)
    assert await sinks.finished(restarted) == -signal.SIGKILL

    last = await sinks.start("sinks")
    totals = dict(zip(groups, (a + b for a, b in zip(first_wave, second_wave, strict=True)), strict=True))
    for table, group in groups.items():
        await wait_for(admin, group, totals[table])
    last.send_signal(signal.SIGTERM)
    assert await sinks.finished(last) == 0

    db = DEFAULT_DATABASE
    events, decisions, actions, rollups = await sinks.query(
        f"SELECT count(), uniqExact(event_id) FROM {db}.events",
        f"SELECT count(), uniqExact(event_id) FROM {db}.decisions",
        f"SELECT count(), uniqExact(action_id) FROM {db}.actions",
        f"SELECT (SELECT sum(events) FROM {db}.events_per_minute),"
        f" (SELECT sum(decisions) FROM {db}.decisions_per_minute),"
        f" (SELECT sum(actions) FROM {db}.actions_per_minute)",
    )
    assert events == [[totals["events"], totals["events"]]]
    assert decisions == [[totals["decisions"], totals["decisions"]]]
    assert actions == [[totals["actions"], totals["actions"]]]
    assert rollups == [[totals["events"], totals["decisions"], totals["actions"]]]
