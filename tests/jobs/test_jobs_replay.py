"""Replay over a recorded run on Kafka: unchanged, it reports no difference; a what-if trigger probability
reports exactly the decisions the seeded dice change."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from typer.testing import CliRunner

from jobs.cli import jobs_app
from jobs.overrides import ConfigChanges, parse_override
from jobs.replay import ReplayReport, comparable, replay
from jobs.timeline import TimeWindow, to_ms
from models.actions import Reply, SendMessage
from models.common import utc_now
from models.decisions import DecisionReason, Priority
from processors.ids import seeded_rng
from settings import Settings
from streams.catalog import AGENT_DECISIONS, DISCORD_ACTIONS, DISCORD_EVENTS, INFERENCE_RESULTS, TopicSpec
from streams.sealing import DataKeys, open_payload
from tests.data_keys import MemoryDataKeys
from tests.jobs.factories import (
    DEPLOYMENT_B,
    DM_CHANNEL,
    RecordedRun,
    answer,
    companion,
    produce_run,
    read_records,
    record_run,
)

pytestmark = pytest.mark.stack

COUNT = 60
# Rich wraps output to the terminal's width; wide enough, each line stays whole.
WIDE = {"COLUMNS": "200"}
START = utc_now().replace(microsecond=0) - timedelta(hours=1)
WINDOW_END = START + timedelta(milliseconds=50 * COUNT)
WINDOW = TimeWindow(START, WINDOW_END)


@pytest.fixture(scope="module")
async def recorded(stack_up: Settings, namespace: str, producer: AIOKafkaProducer) -> RecordedRun:
    run = record_run(START, COUNT)
    await produce_run(producer, namespace, run, routing_at=START - timedelta(minutes=5))
    # Outside the window: an earlier and a later run of the same guilds, and an unreadable event.
    for first, offset in ((COUNT, timedelta(minutes=-2)), (COUNT + 10, timedelta(minutes=2))):
        outside = record_run(START + offset, 5, first=first, routing_version=0)
        await produce_run(producer, namespace, outside, START + offset)
    await producer.send_and_wait(
        DISCORD_EVENTS.name_in(namespace), b"{not json", key=b"x", timestamp_ms=to_ms(START) + 1
    )
    # The answer to the first DM, which the replay asks for again, and one to a request it never makes.
    dm = next(d for d in run.decisions if d.channel_id == DM_CHANNEL)
    for result in (answer(dm, "hello from the recording"), answer(dm, "not asked", request_id="other")):
        await producer.send(
            INFERENCE_RESULTS.name_in(namespace),
            INFERENCE_RESULTS.codec.encode(result),
            key=run.keys[dm.event_id].encode(),
            timestamp_ms=to_ms(START) + 50 * 9 + 20,
        )
    await producer.flush()
    return run


def plain(run: RecordedRun) -> list[tuple[str, object]]:
    """(event id, deployment id) of the decisions with no trigger."""
    return [(d.event_id, d.deployment_id) for d in run.decisions if d.reason is DecisionReason.no_trigger]


async def sandbox_records(
    settings: Settings, report: ReplayReport, spec: TopicSpec, keys: DataKeys
) -> list[Any]:
    """The records the replay wrote to its sandbox's topic, opened with the keys it sealed them with."""
    records = await read_records(settings.kafka_bootstrap, spec.name_in(report.sandbox_namespace))
    return [await open_payload(spec.codec.decode(r.value), spec.sealing, keys) for r in records]


async def test_replay_of_an_unchanged_run_reports_no_difference(
    stack_up: Settings, namespace: str, recorded: RecordedRun
) -> None:
    keys = MemoryDataKeys()
    report = await replay(stack_up.kafka_bootstrap, namespace, WINDOW, keys)
    assert report.differences == []
    assert report.recorded == report.replayed == len(recorded.decisions) == COUNT
    assert (report.stats.events, report.stats.unreadable, report.stats.results) == (COUNT + 1, 1, 1)
    assert any(d.reason is DecisionReason.mentioned for d in recorded.decisions)
    in_sandbox = await sandbox_records(stack_up, report, AGENT_DECISIONS, keys)
    assert len(in_sandbox) == COUNT
    by_key = {(d.event_id, d.deployment_id): comparable(d) for d in in_sandbox}
    assert by_key == {(d.event_id, d.deployment_id): comparable(d) for d in recorded.decisions}
    replies = [
        action
        for action in await sandbox_records(stack_up, report, DISCORD_ACTIONS, keys)
        if isinstance(action, SendMessage | Reply) and action.channel_id == DM_CHANNEL
    ]
    # The recorded answer, styled for the persona; the one nobody asked for is not applied.
    assert len(replies) == 1 and "hello from the recording" in replies[0].content.lower()


async def test_changed_random_probability_reports_what_the_dice_change(
    stack_up: Settings, namespace: str, recorded: RecordedRun
) -> None:
    changes = ConfigChanges(overrides=(parse_override("trigger.random.probability=0.5"),))
    report = await replay(stack_up.kafka_bootstrap, namespace, WINDOW, MemoryDataKeys(), changes=changes)
    # Nothing else draws before the random trigger for these messages: it fires when the first draw does.
    expected = {key for key in plain(recorded) if seeded_rng(*key).random() < 0.5}
    assert 0 < len(expected) < len(plain(recorded))
    assert {(d.event_id, d.deployment_id) for d in report.differences} == expected
    for difference in report.differences:
        assert difference.kind == "changed"
        assert difference.replayed is not None and difference.replayed.reason is DecisionReason.random
        assert difference.replayed.priority is Priority.low
    assert report.transitions() == {("no_trigger", "random"): len(expected)}


def test_the_replay_command_takes_a_deployments_config_file(
    namespace: str, recorded: RecordedRun, tmp_path: Path
) -> None:
    config = tmp_path / "agent.json"
    config.write_text(companion(random_probability=1.0).model_dump_json())
    arguments = ["replay", "--start", START.isoformat(), "--end", WINDOW_END.isoformat()]
    arguments += ["--config", f"{DEPLOYMENT_B}={config}", "--namespace", namespace, "--show", "0"]
    result = CliRunner(env=WIDE).invoke(jobs_app, arguments)
    assert result.exit_code == 0, result.output
    changed = [key for key in plain(recorded) if key[1] == DEPLOYMENT_B]
    assert f"{len(changed)} differences" in result.output
    assert re.search(rf"no_trigger -> random\s*│\s*{len(changed)}\b", result.output)


def test_the_replay_command_names_a_bad_override(namespace: str) -> None:
    arguments = ["replay", "--override", "trigger.random.probability", "--namespace", namespace]
    result = CliRunner(env=WIDE).invoke(jobs_app, arguments)
    assert result.exit_code == 1
    assert "expected [deployment_id:]path=value" in result.output
