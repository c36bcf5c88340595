"""Routines through a worker on the broker, on a clock the test moves (settings.clock_file): Luna's random
thoughts at their drawn times, her greeting at 10:00 in Berlin and not before, and once only across a
kill -9 and restart of the worker; her check-in on a regular away."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from models.agent import AgentConfig
from models.decisions import Decision, DecisionReason
from models.deployments import DeployedAgent
from models.table_keys import RoutineKey
from models.tiers import TIERS
from processors.checkins import REGULAR_INTERACTIONS
from processors.routines import routine_times
from processors.table_catalog import changelog_topic
from settings import Settings
from streams.catalog import AGENT_DECISIONS, INFERENCE_LANES
from tests.clock_file import set_clock
from tests.processors.conftest import Collector, Producer, Worker
from tests.processors.factories import (
    deployed,
    envelope,
    guild_create,
    luna,
    message_data,
    routing,
    snowflake,
    user,
)
from tests.stored_records import stored_records
from tests.waiting import wait_until

pytestmark = pytest.mark.stack

DAY = date(2026, 1, 15)  # winter: Berlin is UTC+1
KAI = user(snowflake(), "kai")
PROBES = 30


def utc(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime.combine(DAY, time(hour, minute, second), tzinfo=UTC)


@pytest.fixture(scope="module")
def clock(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clock") / "now"
    set_clock(path, utc(6, 0))
    return path


@pytest.fixture(scope="module")
async def worker(
    namespace: str, clock: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Worker]:
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    worker = Worker(namespace, "deep-processors", log, {"DEEP_CLOCK_FILE": str(clock)})
    worker.start()
    yield worker
    worker.stop()


def punctual_luna() -> AgentConfig:
    data = luna().model_dump(mode="json")
    data["character"]["personality"]["conscientiousness"] = 100
    data["behavior"].update(
        {
            "schedule": {"time_zone": "Europe/Berlin", "quiet_hours": {"start": "23:00", "end": "08:00"}},
            "proactive_actions": {
                "morning_greeting": {"enabled": True, "time": "10:00", "message_template": "Good morning~"},
                "random_thoughts": {
                    "enabled": True,
                    "frequency": "every 1-2 hours",
                    "daily_budget": 24,
                    "topics": ["anime"],
                },
            },
        }
    )
    return AgentConfig.model_validate(data)


def thought_times(companion: DeployedAgent) -> list[datetime]:
    agent = companion.agent
    assert agent.character is not None
    thoughts = agent.behavior.proactive_actions["random_thoughts"]
    return routine_times(
        companion.deployment.deployment_id,
        DAY,
        "random_thoughts",
        thoughts,
        agent.behavior.schedule,
        agent.character.personality,
    )


def proactive(collector: Collector, companion: DeployedAgent, routine: str) -> list[Decision]:
    return [
        d
        for d in collector.of(AGENT_DECISIONS)
        if d.deployment_id == companion.deployment.deployment_id and d.routine == routine
    ]


def decided_on(event_id: str) -> Callable[[Decision], bool]:
    return lambda decision: decision.event_id == event_id


async def open_channel(produce: Producer, collector: Collector) -> DeployedAgent:
    """Deploy Luna in a fresh guild and have Kai speak there until her decision shows the worker knows."""
    guild, general = snowflake(), snowflake()
    bot = snowflake()
    companion = deployed(
        punctual_luna(), guild_id=guild, bot_id=bot, text_channels=[general], deployed_at=utc(0)
    )
    await produce.routing(routing(guild, companion))
    created = guild_create(guild, owner_id=snowflake(), channels={general: "general"})
    await produce.event(envelope("GUILD_CREATE", created, bot_id=bot, guild_id=guild))
    for _ in range(PROBES):
        at = utc(6, 30)
        data = message_data(guild_id=guild, channel_id=general, author=KAI, content="morning", at=at)
        spoken = envelope("MESSAGE_CREATE", data, bot_id=bot, guild_id=guild, channel_id=general, at=at)
        await produce.event(spoken)
        with suppress(AssertionError):
            await collector.wait_for(AGENT_DECISIONS, decided_on(spoken.event_id), within=2.0)
            return companion
    raise AssertionError("the worker never decided on a message in the new guild")


async def test_greets_at_ten_in_berlin_after_the_thoughts_and_once_across_a_restart(
    stack_up: Settings, namespace: str, worker: Worker, produce: Producer, collector: Collector, clock: Path
) -> None:
    companion = await open_channel(produce, collector)
    thoughts = thought_times(companion)
    greeting_at = utc(9, 0)  # 10:00 in Berlin
    before = [at for at in thoughts if at < greeting_at]
    after = [at for at in thoughts if at > greeting_at + timedelta(seconds=1)]
    assert before and after and all(at >= utc(7, 0) for at in thoughts)  # quiet until 08:00 local

    # Each thought fires when the clock reaches its drawn time; the greeting not before 10:00 local.
    for count, at in enumerate(before, start=1):
        set_clock(clock, at)
        await collector.wait_for(
            AGENT_DECISIONS,
            lambda d: (
                d.deployment_id == companion.deployment.deployment_id and d.routine == "random_thoughts"
            ),
            count=count,
        )
        assert not proactive(collector, companion, "morning_greeting")
    set_clock(clock, greeting_at)
    [greeting] = await collector.wait_for(
        AGENT_DECISIONS,
        lambda d: d.deployment_id == companion.deployment.deployment_id and d.routine == "morning_greeting",
    )
    assert greeting.reason is DecisionReason.proactive and greeting.respond
    lane = INFERENCE_LANES[TIERS[companion.owner_tier].lane]
    [request] = await collector.wait_for(lane, lambda r: r.event_id == greeting.event_id)
    assert request.target.message_id is None

    # Killed and restarted at the same time of day, once the greeting's marker is saved (it follows the
    # outputs): the marker is recovered, so only the next thought fires.
    changelog = changelog_topic(f"{namespace}{worker.app_id}", RoutineKey.TABLE)
    deployment = str(companion.deployment.deployment_id).encode()
    marker = f"{DAY.isoformat()}/morning_greeting/".encode()

    async def marker_saved() -> bool:
        records = await stored_records(stack_up.kafka_bootstrap, [changelog])
        return any(r.value is not None and deployment in r.value and marker in r.value for r in records)

    await wait_until(marker_saved, "the greeting's marker in the routines changelog", timeout_s=30)
    worker.kill()
    worker.start()
    set_clock(clock, after[0] + timedelta(seconds=1))
    await collector.wait_for(
        AGENT_DECISIONS,
        lambda d: d.deployment_id == companion.deployment.deployment_id and d.routine == "random_thoughts",
        count=len(before) + 1,
    )
    assert len(proactive(collector, companion, "morning_greeting")) == 1
    markers = [d.event_id for d in proactive(collector, companion, "random_thoughts")]
    assert len(markers) == len(set(markers)) == len(before) + 1


async def test_luna_checks_in_on_a_regular_away_at_her_time(
    worker: Worker, produce: Producer, collector: Collector, clock: Path
) -> None:
    guild, general, bot = snowflake(), snowflake(), snowflake()
    data = punctual_luna().model_dump(mode="json")
    data["behavior"]["proactive_actions"] = {
        "check_in": {"enabled": True, "time": "18:00", "action": "check_in", "skip_when_silent_h": 0}
    }
    companion = deployed(
        AgentConfig.model_validate(data),
        guild_id=guild,
        bot_id=bot,
        text_channels=[general],
        deployed_at=utc(0) - timedelta(days=10),
    )
    await produce.routing(routing(guild, companion))
    created = guild_create(guild, owner_id=snowflake(), channels={general: "general"})
    await produce.event(envelope("GUILD_CREATE", created, bot_id=bot, guild_id=guild))
    # Mira talked with Luna five times four days ago, then went quiet.
    mira = user(snowflake(), "mira")
    for minute in range(REGULAR_INTERACTIONS):
        at = utc(12, minute) - timedelta(days=4)
        said = message_data(
            guild_id=guild,
            channel_id=general,
            author=mira,
            content=f"<@{bot}> hi!",
            at=at,
            mentions=[user(bot, "luna", True)],
        )
        spoken = envelope("MESSAGE_CREATE", said, bot_id=bot, guild_id=guild, channel_id=general, at=at)
        await produce.event(spoken)
        await collector.wait_for(AGENT_DECISIONS, decided_on(spoken.event_id))
    evening = utc(17, 0) + timedelta(days=1)  # 18:00 in Berlin the next day
    set_clock(clock, evening)
    [check_in] = await collector.wait_for(
        AGENT_DECISIONS,
        lambda d: d.deployment_id == companion.deployment.deployment_id and d.routine == "check_in",
    )
    assert check_in.respond and check_in.author_id == mira["id"]
    lane = INFERENCE_LANES[TIERS[companion.owner_tier].lane]
    [request] = await collector.wait_for(lane, lambda r: r.event_id == check_in.event_id)
    assert request.target.greet_as == f"<@{mira['id']}>"
