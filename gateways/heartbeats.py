"""One scheduler for the heartbeats of every shard of a runner.

A shard's reader then waits on its socket with no timer at all; a per-connection heartbeat (a timeout on
every receive, or a task per connection) costs a timer per message or a task per bot. Heartbeats are due
every ~41 s, so ten thousand bots make ~240 a second: a heap and a quarter-second tick serve them.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from typing import Protocol

RESOLUTION_S = 0.25


class Beating(Protocol):
    def beat(self, due: float) -> None:
        """Called once `due` (loop time) has passed; ignores beats it no longer expects."""


class Heartbeats:
    def __init__(self, resolution_s: float = RESOLUTION_S) -> None:
        self._resolution_s = resolution_s
        self._heap: list[tuple[float, int, Beating]] = []
        # Ties on `due` are broken by arrival, never by comparing shards.
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def schedule(self, beating: Beating, due: float) -> None:
        heapq.heappush(self._heap, (due, next(self._order), beating))

    def fire_due(self, now: float) -> int:
        fired = 0
        while self._heap and self._heap[0][0] <= now:
            due, _, beating = heapq.heappop(self._heap)
            beating.beat(due)
            fired += 1
        return fired

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self.fire_due(loop.time())
            await asyncio.sleep(self._resolution_s)
