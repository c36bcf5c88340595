"""A circuit breaker per endpoint: after N consecutive failures the endpoint gets no traffic for a cool-down,
then one trial request (half-open) decides whether it closes again or stays open."""

from __future__ import annotations

from enum import StrEnum


class BreakerState(StrEnum):
    closed = "closed"
    open = "open"
    half_open = "half_open"


class CircuitBreaker:
    """Times are monotonic seconds passed in by the caller, so the logic is testable without sleeping."""

    def __init__(self, failure_threshold: int, cooldown_s: float) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.consecutive_failures = 0
        self.opened_at: float | None = None
        self.trial_in_flight = False
        self.times_opened = 0

    def state(self, now: float) -> BreakerState:
        if self.opened_at is None:
            return BreakerState.closed
        if now - self.opened_at >= self.cooldown_s:
            return BreakerState.half_open
        return BreakerState.open

    def allows(self, now: float) -> bool:
        """Whether a request may be sent now (a half-open breaker lets one trial through at a time)."""
        state = self.state(now)
        return state is BreakerState.closed or (state is BreakerState.half_open and not self.trial_in_flight)

    def started(self, now: float) -> None:
        if self.state(now) is BreakerState.half_open:
            self.trial_in_flight = True

    def succeeded(self) -> None:
        self.consecutive_failures = 0
        self.opened_at = None
        self.trial_in_flight = False

    def failed(self, now: float) -> None:
        self.consecutive_failures += 1
        reopen = self.trial_in_flight
        self.trial_in_flight = False
        if reopen or (self.opened_at is None and self.consecutive_failures >= self.failure_threshold):
            self.opened_at = now
            self.times_opened += 1

    def reopens_at(self) -> float | None:
        return None if self.opened_at is None else self.opened_at + self.cooldown_s
