"""One lane per bot: a bot's actions in order, bots independent of each other.

A bot waiting out a 429 (or Discord's per-route buckets) holds only its own lane; the other bots of the
runner keep acting. A lane's task exists only while the lane has work.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")


class Lanes(Generic[Item]):
    def __init__(self, work: Callable[[Item], Awaitable[None]], on_done: Callable[[Item], None]) -> None:
        """`work(item)` performs one item, and is retried with backoff when it raises (Redis or Kafka
        unreachable); `on_done(item)` runs once it returned."""
        self._work = work
        self._on_done = on_done
        self._lanes: dict[str, deque[Item]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.queued = 0

    def put(self, lane: str, item: Item) -> None:
        queue = self._lanes.get(lane)
        if queue is None:
            queue = self._lanes[lane] = deque()
        queue.append(item)
        self.queued += 1
        if lane not in self._tasks:
            self._tasks[lane] = asyncio.create_task(self._drain(lane, queue), name=f"lane-{lane}")

    async def _drain(self, lane: str, queue: deque[Item]) -> None:
        try:
            while queue:
                item = queue[0]
                failures = 0
                while True:
                    try:
                        await self._work(item)
                        break
                    except Exception:
                        failures += 1
                        log.exception("lane %s: attempt %d failed; retrying", lane, failures)
                        await asyncio.sleep(min(30.0, 0.5 * 2**failures))
                queue.popleft()
                self.queued -= 1
                self._on_done(item)
        finally:
            self._tasks.pop(lane, None)
            if not queue:
                self._lanes.pop(lane, None)

    async def settle(self, lanes: Iterable[str], within_s: float) -> None:
        """Let these lanes finish for up to `within_s`, then cancel what is left."""
        lanes = list(lanes)
        tasks = [task for lane in lanes if (task := self._tasks.get(lane)) is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=within_s)
        await self.cancel(lanes)

    async def cancel(self, lanes: Iterable[str]) -> None:
        """Stop these lanes and drop what they hold (uncommitted: the partition's next owner gets it)."""
        tasks = []
        for lane in lanes:
            task = self._tasks.pop(lane, None)
            if task is not None:
                task.cancel()
                tasks.append(task)
            dropped = self._lanes.pop(lane, None)
            if dropped:
                self.queued -= len(dropped)
        await asyncio.gather(*tasks, return_exceptions=True)

    def lanes(self) -> list[str]:
        return list(self._lanes)
