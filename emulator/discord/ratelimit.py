"""Rate-limit arithmetic for REST buckets, the gateway send limit and Cloudflare's invalid-request ban.

Everything here is pure bookkeeping over a caller-supplied clock, so the rules are tested without sleeping.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# Top-level ("major") parameters: a bucket is shared per route but split per value of these.
MAJOR_PARAMETERS = ("channel_id", "guild_id", "webhook_id")


@dataclass(slots=True)
class Window:
    """A fixed window: `count` uses since the window opened, which closes at `reset_at`."""

    count: int
    reset_at: float


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_after: float


def take(window: Window | None, now: float, limit: int, period: float) -> tuple[Window, Verdict]:
    """Spend one use of a fixed window, opening a fresh window when the last one has expired."""
    if window is None or now >= window.reset_at:
        window = Window(0, now + period)
    reset_after = max(window.reset_at - now, 0.0)
    if window.count >= limit:
        return window, Verdict(False, limit, 0, reset_after)
    window.count += 1
    return window, Verdict(True, limit, limit - window.count, reset_after)


def bucket_hash(method: str, route_template: str) -> str:
    """Opaque per-route id like Discord's X-RateLimit-Bucket (the major parameter is added separately)."""
    return hashlib.blake2s(f"{method} {route_template}".encode(), digest_size=16).hexdigest()


def major_parameter(match_info: dict[str, str]) -> str:
    """The top-level id that splits a bucket; a webhook is identified by id and token together."""
    for name in MAJOR_PARAMETERS:
        value = match_info.get(name)
        if value is not None:
            if name == "webhook_id":
                return f"{value}+{match_info.get('webhook_token', '')}"
            return value
    return ""


def ratelimit_headers(verdict: Verdict, bucket: str, now_epoch: float) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(verdict.limit),
        "X-RateLimit-Remaining": str(verdict.remaining),
        "X-RateLimit-Reset": f"{now_epoch + verdict.reset_after:.3f}",
        "X-RateLimit-Reset-After": f"{verdict.reset_after:.3f}",
        "X-RateLimit-Bucket": bucket,
    }


class InvalidRequestCounter:
    """Counts 401/403/429 answers per client IP over a sliding window made of `slots` sub-windows.

    Discord's Cloudflare bans an IP for a while once it passes 10,000 invalid requests in 10 minutes; the
    counter reports when `threshold` is reached so the server can impose that ban.
    """

    __slots__ = ("_counts", "_slot_s", "_slots")

    def __init__(self, window_s: float = 600.0, slots: int = 10) -> None:
        self._slot_s = window_s / slots
        self._slots = slots
        # ip -> {slot index: count}; only the last `slots` indices are kept.
        self._counts: dict[str, dict[int, int]] = {}

    def _prune(self, per_ip: dict[int, int], current: int) -> None:
        for index in [i for i in per_ip if i <= current - self._slots]:
            del per_ip[index]

    def add(self, ip: str, now: float) -> int:
        """Count one invalid request and return the IP's total in the window."""
        current = int(now // self._slot_s)
        per_ip = self._counts.setdefault(ip, {})
        per_ip[current] = per_ip.get(current, 0) + 1
        self._prune(per_ip, current)
        return sum(per_ip.values())

    def count(self, ip: str, now: float) -> int:
        per_ip = self._counts.get(ip)
        if not per_ip:
            return 0
        self._prune(per_ip, int(now // self._slot_s))
        return sum(per_ip.values())

    def snapshot(self, now: float) -> dict[str, int]:
        totals = {ip: self.count(ip, now) for ip in list(self._counts)}
        for ip in [ip for ip, total in totals.items() if total == 0]:
            del self._counts[ip]
            del totals[ip]
        return totals

    def clear(self) -> None:
        self._counts.clear()
