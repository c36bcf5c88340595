"""Issue 15's hosted trivia night end to end, on a test clock (DEEP_CLOCK_FILE, read by the processors and the
emulated Discord alike): the owner gives the demo's Mod Bot a trivia night through the playground; the bot
creates it as a scheduled event in the emulated Discord, starts it at its time, asks the question in
#general, scores a member's right answer, completes the event with the leaderboard, and `/trivia` shows it."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from processors.table_catalog import PROCESSORS_APP_ID
from streams.catalog import DISCORD_EVENTS
from tests.clock_file import set_clock
from tests.e2e.conftest import ANSWER_S, World, message_text
from tests.e2e.conftest import CLOCK_START as START
from tests.waiting import wait_until

pytestmark = pytest.mark.stack

# The test clock starts at the wall clock's hour; the trivia night is two hours later (Mod Bot's zone: UTC).
NIGHT = START + timedelta(hours=2)
HOST = "Mod Bot"


async def give_trivia_night(world: World) -> None:
    """The owner's edit in the playground: a one-question trivia night in #general, and `/trivia`."""
    deployment_id = world.deployments[HOST]
    async with httpx.AsyncClient(base_url=world.running.url) as playground:
        session = (await playground.get("/api/session")).json()
        [agent] = [a for a in session["agents"] if a["deployment_id"] == str(deployment_id)]
        config = agent["config"]
        config["enabled_tools"] = sorted({*config["enabled_tools"], "games"})
        config["enabled_commands"] = sorted({*config["enabled_commands"], "trivia"})
        config["behavior"]["schedule"] = {"time_zone": "UTC"}
        config["behavior"]["hosted_events"] = {
            "trivia": {
                "kind": "trivia",
                "title": "Trivia night",
                "on_date": NIGHT.date().isoformat(),
                "time": NIGHT.strftime("%H:%M"),
                "duration_minutes": 60,
                "remind_minutes": 0,
                "channel": "#general",
                "location": "#general",
                "trivia": {
                    "source": "owner",
                    "questions": [{"question": "Capital of Japan?", "answers": ["Tokyo"]}],
                    "question_count": 1,
                },
            }
        }
        saved = await playground.put(f"/api/agents/{deployment_id}/config", json=config)
        assert saved.status_code == 200, saved.text


async def processors_took(world: World, event_type: str) -> None:
    """Once the processors committed past the first `event_type` dispatch on discord.events (they applied
    it): the host learns a scheduled event's id from Discord's dispatch before the clock moves on."""
    topic = DISCORD_EVENTS.name_in(world.namespace)
    bootstrap = world.settings.kafka_bootstrap
    reader = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await reader.start()
    try:
        found: tuple[TopicPartition, int] | None = None

        async def dispatched() -> bool:
            nonlocal found
            for records in (await reader.getmany(timeout_ms=200)).values():
                for record in records:
                    if DISCORD_EVENTS.codec.decode(record.value).type == event_type:
                        found = TopicPartition(topic, record.partition), record.offset
            return found is not None

        await wait_until(dispatched, f"a {event_type} dispatch", timeout_s=ANSWER_S)
    finally:
        await reader.stop()
    assert found is not None
    partition, offset = found
    group = f"{world.namespace}{PROCESSORS_APP_ID}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:

        async def committed() -> bool:
            offsets = await admin.list_consumer_group_offsets(group, partitions=[partition])
            return partition in offsets and offsets[partition].offset > offset

        await wait_until(committed, f"the processors past {event_type}", timeout_s=ANSWER_S)
    finally:
        await admin.close()


def said_in(world: World, channel_id: str, text: str) -> Any:
    def match(action: dict[str, Any]) -> bool:
        return (
            action["kind"] == "message"
            and action["bot_id"] == world.bots[HOST]
            and action["channel_id"] == channel_id
            and text in message_text(action["payload"])
        )

    return match


async def test_a_trivia_night_is_scheduled_started_played_scored_and_completed(
    world: World, clock: Path
) -> None:
    general, mia = world.channels["general"], world.users["owner"]
    start = await world.last_seq()
    await give_trivia_night(world)

    # Announced at once (a day ahead at most): created on Discord, for its time.
    await world.wait_action(start, said_in(world, general, "Trivia night** is on"))
    [scheduled] = await world.control.scheduled_events(world.guild_id)
    assert (scheduled["name"], scheduled["status"], scheduled["creator_id"]) == (
        "Trivia night",
        1,
        world.bots[HOST],
    )
    assert datetime.fromisoformat(scheduled["scheduled_start_time"]) == NIGHT
    await processors_took(world, "GUILD_SCHEDULED_EVENT_CREATE")

    set_clock(clock, NIGHT)
    await world.wait_action(start, said_in(world, general, "Question 1/1:** Capital of Japan?"))
    [running] = await world.control.scheduled_events(world.guild_id)
    assert running["status"] == 2

    await world.control.post_user_message(mia, "tokyo!", general)
    await world.wait_action(start, said_in(world, general, f"<@{mia}> got it: **Tokyo**"))
    await world.wait_action(start, said_in(world, general, f"Final scores:\n1. <@{mia}> · 1 point"))
    [completed] = await world.control.scheduled_events(world.guild_id)
    assert completed["status"] == 3

    since = await world.last_seq()
    await world.control.invoke_command(world.bots[HOST], mia, general, "trivia")
    # Answered (perhaps deferred first, then the original response edited) with the guild's points.
    await world.wait_action(
        since,
        lambda a: (
            a["kind"] == "interaction_response"
            and a["bot_id"] == world.bots[HOST]
            and f"1. <@{mia}> · 1 point" in message_text(a["payload"].get("data"))
        ),
    )
