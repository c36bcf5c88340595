"""Routing by model name (pure): which endpoints may serve a model, and which one gets the next request."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from inference.config import EndpointConfig


def match_rank(patterns: Sequence[str], model: str) -> int | None:
    """0 when the endpoint names the model exactly, 1 when a glob pattern ("gpt-*") matches it, 2 when it
    takes any model ("*"), None when it does not serve the model."""
    if model in patterns:
        return 0
    if any(fnmatchcase(model, pattern) for pattern in patterns if pattern != "*"):
        return 1
    if "*" in patterns:
        return 2
    return None


def serving(endpoints: Sequence[EndpointConfig], model: str) -> list[str]:
    """Names of the endpoints for `model` with the closest match: exact names, else patterns, else "*"."""
    ranked = [(rank, e.name) for e in endpoints if (rank := match_rank(e.models, model)) is not None]
    if not ranked:
        return []
    best = min(rank for rank, _ in ranked)
    return [name for rank, name in ranked if rank == best]


@dataclass(frozen=True)
class EndpointLoad:
    name: str
    in_flight: int
    max_concurrency: int
    # The endpoint's circuit breaker lets a request through now.
    admits: bool

    @property
    def free(self) -> bool:
        return self.admits and self.in_flight < self.max_concurrency


def pick(candidates: Sequence[EndpointLoad], avoid: frozenset[str] = frozenset()) -> str | None:
    """The least loaded candidate with a free slot, avoiding endpoints a request already failed on unless it
    failed on all of them. None: every candidate is busy or open; wait."""
    fresh = [c for c in candidates if c.name not in avoid]
    pool = fresh if fresh else list(candidates)
    free = [c for c in pool if c.free]
    if not free:
        return None
    return min(free, key=lambda c: (c.in_flight / c.max_concurrency, c.in_flight)).name
