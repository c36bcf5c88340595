"""Issue 21's announcements end to end, on a test clock (DEEP_CLOCK_FILE, read by the processors and the
emulated Discord alike): the owner schedules two announcements with Kai's /announce in the demo's
announcement channel; each is posted once at its local time and crossposted, across a kill -9 and restart
of the processors worker before the first and again between the two."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from emulator.discord import EmulatorError
from processors.announcements import next_time
from tests.clock_file import set_clock
from tests.e2e.conftest import ANSWER_S, World, message_text
from tests.e2e.conftest import CLOCK_START as START

pytestmark = pytest.mark.stack

UTC_ZONE = ZoneInfo("UTC")

# The test clock starts at the wall clock's hour: an interaction's time is the gateway's receipt of it (wall
# time), so the announcements are for three and four hours later (Kai's zone is UTC).
FIRST, SECOND = (START + timedelta(hours=3)).strftime("%H:%M"), (START + timedelta(hours=4)).strftime("%H:%M")


async def processors_worker(world: World) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=world.running.url) as playground:
        processes = (await playground.get("/api/live")).json()["processes"]
    return next(p for p in processes if p["name"] == "processors")


async def kill_processors(world: World) -> None:
    """kill -9 the demo's processors worker (a child of the demo this test started) and wait until the
    demo's supervisor has it running again."""
    before = await processors_worker(world)
    os.kill(before["pid"], signal.SIGKILL)
    deadline = time.monotonic() + ANSWER_S
    while time.monotonic() < deadline:
        now = await processors_worker(world)
        if now["restarts"] > before["restarts"] and now["running"]:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"the processors worker was not restarted\n{world.running.explain()}")


async def announce(world: World, channel_id: str, at: str, message: str) -> None:
    """The owner's /announce to Kai, retried until Kai's gateway has registered the command."""
    options = [{"name": "at", "type": 3, "value": at}, {"name": "message", "type": 3, "value": message}]
    deadline = time.monotonic() + ANSWER_S
    while True:
        since = await world.last_seq()
        try:
            await world.control.invoke_command(
                world.bots["Kai"], world.users["owner"], channel_id, "announce", options
            )
        except EmulatorError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
            continue
        # The interactions endpoint defers; the answer edits the original response.
        await world.wait_action(
            since,
            lambda a: (
                a["kind"] == "interaction_response"
                and a["bot_id"] == world.bots["Kai"]
                and f"at {at}" in message_text(a["payload"].get("data"))
            ),
        )
        return


def crossposted(world: World, channel_id: str, text: str) -> Any:
    def match(action: dict[str, Any]) -> bool:
        return (
            action["kind"] == "crosspost"
            and action["bot_id"] == world.bots["Kai"]
            and action["channel_id"] == channel_id
            and text in message_text(action["payload"])
        )

    return match


async def test_scheduled_announcements_post_once_at_their_time_across_restarts_crossposted(
    world: World, clock: Path
) -> None:
    dumped = await world.control.world()
    [news] = [c["id"] for c in dumped["guilds"][0]["channels"] if c["type"] == 5]
    start = await world.last_seq()
    await announce(world, news, FIRST, "doors open at the hangout")
    await announce(world, news, SECOND, "the stream starts")

    # Killed while both wait: the restarted worker recovers them from its table's changelog.
    await kill_processors(world)
    set_clock(clock, next_time(datetime.now(UTC), FIRST, UTC_ZONE))
    first = await world.wait_action(start, crossposted(world, news, "doors open at the hangout"))
    assert first["payload"]["flags"] & 1  # CROSSPOSTED

    # Killed again after the first was posted: the restart posts only the second, at its time.
    await kill_processors(world)
    set_clock(clock, next_time(datetime.now(UTC), SECOND, UTC_ZONE))
    await world.wait_action(start, crossposted(world, news, "the stream starts"))
    messages = [
        a
        for a in await world.control.actions(since=start, bot_id=world.bots["Kai"])
        if a["kind"] in ("message", "crosspost") and a["channel_id"] == news
    ]
    said = [message_text(a["payload"]) for a in messages]
    assert sum("doors open at the hangout" in text for text in said) == 2, (
        said
    )  # posted once, crossposted once
    assert sum("the stream starts" in text for text in said) == 2, said
