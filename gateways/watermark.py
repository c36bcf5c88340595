"""The highest number below which everything is done, when the work completes out of order.

A shard's checkpoint is the sequence a RESUME may start after: dispatches of one session go to different
Kafka partitions, so acknowledgements come back out of order.
"""

from __future__ import annotations


class Watermark:
    """One below the oldest number still in flight, or the highest received when none is."""

    __slots__ = ("_in_flight", "last_received")

    def __init__(self, start: int = 0) -> None:
        self.last_received = start
        # Created on first use: most of ten thousand idle shards never have anything in flight.
        self._in_flight: set[int] | None = None

    def received(self, number: int) -> None:
        """Work that has started; it holds the watermark below it until done()."""
        self.last_received = max(self.last_received, number)
        if self._in_flight is None:
            self._in_flight = set()
        self._in_flight.add(number)

    def skipped(self, number: int) -> None:
        """A number with no work to wait for."""
        self.last_received = max(self.last_received, number)

    def done(self, number: int) -> None:
        if self._in_flight is not None:
            self._in_flight.discard(number)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight) if self._in_flight else 0

    @property
    def value(self) -> int:
        if self._in_flight:
            return min(self._in_flight) - 1
        return self.last_received

    def restart(self, number: int) -> None:
        """Start over from `number` (a RESUME replays after it); whatever was in flight is forgotten."""
        self.last_received = number
        self._in_flight = None
