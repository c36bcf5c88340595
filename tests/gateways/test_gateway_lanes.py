"""Per-bot lanes (order within a bot, independence between bots, retries, cancellation) and the shared
heartbeat scheduler."""

from __future__ import annotations

import asyncio

from gateways.heartbeats import Heartbeats
from gateways.lanes import Lanes
from tests.waiting import wait_until


async def test_one_lane_in_order_and_a_stuck_lane_holds_up_only_itself() -> None:
    release = asyncio.Event()
    performed: list[str] = []
    done: list[str] = []

    async def work(item: str) -> None:
        if item == "slow-1":
            await release.wait()
        performed.append(item)

    lanes: Lanes[str] = Lanes(work, done.append)
    for item in ("slow-1", "slow-2"):
        lanes.put("slow", item)
    for item in ("fast-1", "fast-2", "fast-3"):
        lanes.put("fast", item)
    await wait_until(lambda: len(done) == 3, "the fast lane's three items")
    assert performed == ["fast-1", "fast-2", "fast-3"]
    assert lanes.queued == 2
    release.set()
    await wait_until(lambda: len(done) == 5, "the slow lane's two items")
    assert performed[3:] == ["slow-1", "slow-2"]
    assert sorted(done) == sorted(performed)
    assert lanes.queued == 0 and lanes.lanes() == []


async def test_a_failing_item_is_retried_until_it_succeeds() -> None:
    attempts: list[int] = []
    done: list[str] = []

    async def work(item: str) -> None:
        attempts.append(1)
        if len(attempts) < 2:
            raise ConnectionError("redis went away")

    lanes: Lanes[str] = Lanes(work, done.append)
    lanes.put("bot", "a")
    await wait_until(lambda: done, "the retried item")
    assert done == ["a"] and len(attempts) == 2


async def test_settle_cancels_what_does_not_finish_in_time() -> None:
    done: list[str] = []

    async def work(item: str) -> None:
        if item == "stuck":
            await asyncio.Event().wait()

    lanes: Lanes[str] = Lanes(work, done.append)
    lanes.put("a", "quick")
    lanes.put("b", "stuck")
    lanes.put("b", "behind")
    await lanes.settle(["a", "b"], within_s=0.2)
    assert done == ["quick"]
    assert lanes.queued == 0 and lanes.lanes() == []


class Beat:
    def __init__(self) -> None:
        self.beats: list[float] = []

    def beat(self, due: float) -> None:
        self.beats.append(due)


def test_heartbeats_fire_in_due_order_and_only_when_due() -> None:
    heartbeats = Heartbeats()
    first, second = Beat(), Beat()
    heartbeats.schedule(second, 2.0)
    heartbeats.schedule(first, 1.0)
    heartbeats.schedule(first, 1.0)  # ties are fine
    assert heartbeats.fire_due(0.5) == 0
    assert heartbeats.fire_due(1.0) == 2
    assert (first.beats, second.beats) == ([1.0, 1.0], [])
    assert heartbeats.fire_due(5.0) == 1
    assert second.beats == [2.0] and len(heartbeats) == 0
