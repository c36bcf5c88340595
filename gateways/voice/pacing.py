"""When each 20 ms frame goes out: on a schedule fixed at the start, so sleeping's small overshoots never add
up to drift (a sender that slept "20 ms" per frame would fall behind by its overshoot every frame).

Pure: the player asks the schedule how long to wait and tells it what was sent.
"""

from __future__ import annotations

from dataclasses import dataclass

FRAME_S = 0.020
# A sender further behind than this (the process was stopped, or the event loop blocked) starts a new
# schedule from now rather than sending the missed frames in a burst, which the receiver would drop.
MAX_LATE_S = 0.2


@dataclass(slots=True)
class FrameSchedule:
    start: float
    sent: int = 0

    @property
    def due(self) -> float:
        """When the next frame is due."""
        return self.start + self.sent * FRAME_S

    def wait_s(self, now: float) -> float:
        return max(0.0, self.due - now)

    def frame_sent(self, now: float) -> None:
        """Count the frame sent at `now`; start afresh from it when it went out too late."""
        if now - self.due > MAX_LATE_S:
            self.restart(now)
        self.sent += 1

    def restart(self, now: float) -> None:
        """A new schedule whose next frame is due at `now` (after a pause)."""
        self.start = now
        self.sent = 0
