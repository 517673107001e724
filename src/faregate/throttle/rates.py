"""Requests- and tokens-per-minute limits (GCRA), in this process's memory.

Each limit is a bucket of `limit` units that refills evenly over a minute: a request of `cost`
units passes when the bucket holds them. The state per bucket is one number, the theoretical
arrival time (TAT): the moment the bucket would be full again. So a check is one dict read and
one write, the same arithmetic runs in Redis (throttle/redis_rates.py), and what the client is
told — remaining, the time until full (reset), the time until this request would pass (retry)
— falls out of the backlog `TAT - now`.

Several buckets are checked together (the organization's and the key's, requests and tokens):
a request passes only when every one of them has room, and only then takes from all of them, so
a refused request costs nothing."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

PERIOD_MS = 60_000
_EPSILON = 1e-6  # float slack when dividing the backlog into whole units


@dataclass(frozen=True, slots=True)
class Limit:
    """One bucket to take `cost` units from: `key` names it (say "org:ID:rpm")."""

    key: str
    limit: int  # units per minute
    cost: int


@dataclass(frozen=True, slots=True)
class Outcome:
    limit: int
    remaining: int  # units left after this request (before it, when refused)
    reset_ms: float  # until the bucket is full again
    retry_ms: float  # until this request would pass; 0 when it passed

    @property
    def used(self) -> int:
        return self.limit - self.remaining


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    outcomes: tuple[Outcome, ...]  # one per Limit, in the order given


class RateLimiter(Protocol):
    async def hit(self, limits: Sequence[Limit]) -> Decision:
        """Take every limit's cost if all of them have room; otherwise take nothing."""
        ...

    async def close(self) -> None:
        ...


def interval_ms(limit: Limit) -> float:
    return PERIOD_MS / limit.limit


def fits(limit: Limit, backlog_ms: float) -> bool:
    """Whether `cost` more units fit in a bucket whose TAT is `backlog_ms` ahead of now."""
    return backlog_ms + limit.cost * interval_ms(limit) <= PERIOD_MS


def outcome(limit: Limit, backlog_ms: float, allowed: bool) -> Outcome:
    """What to tell the client about one bucket, from its backlog before this request."""
    step = interval_ms(limit)
    after = backlog_ms + limit.cost * step if allowed else backlog_ms
    remaining = max(0, min(limit.limit, math.floor((PERIOD_MS - after) / step + _EPSILON)))
    retry = 0.0 if allowed else max(0.0, backlog_ms + limit.cost * step - PERIOD_MS)
    return Outcome(limit.limit, remaining, max(0.0, after), retry)


def decide(limits: Sequence[Limit], backlogs: Sequence[float]) -> Decision:
    allowed = all(fits(lim, b) for lim, b in zip(limits, backlogs, strict=True))
    return Decision(allowed, tuple(outcome(lim, b, allowed)
                                   for lim, b in zip(limits, backlogs, strict=True)))


class MemoryRates:
    """The limiter of one process: a dict of TATs (monotonic milliseconds)."""

    MAX_BUCKETS = 200_000  # beyond this, forget the buckets that are full again

    def __init__(self) -> None:
        self._tat: dict[str, float] = {}

    def hit_now(self, limits: Sequence[Limit], now_ms: float | None = None) -> Decision:
        now = time.monotonic() * 1000 if now_ms is None else now_ms
        backlogs = [max(0.0, self._tat.get(lim.key, now) - now) for lim in limits]
        decision = decide(limits, backlogs)
        if decision.allowed:
            for lim, backlog in zip(limits, backlogs, strict=True):
                self._tat[lim.key] = now + backlog + lim.cost * interval_ms(lim)
            if len(self._tat) > self.MAX_BUCKETS:
                self._tat = {k: v for k, v in self._tat.items() if v > now}
        return decision

    async def hit(self, limits: Sequence[Limit]) -> Decision:
        return self.hit_now(limits)

    async def close(self) -> None:
        return None


def duration(ms: float) -> str:
    """A duration as OpenAI's x-ratelimit-reset-* headers write it: "20ms", "1.5s", "6m0s"."""
    if ms < 1000:
        return f"{math.ceil(ms)}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{_seconds(seconds)}s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{int(minutes)}m{_seconds(rest)}s"
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}h{minutes}m{_seconds(rest)}s"


def _seconds(value: float) -> str:
    text = f"{math.ceil(value * 1000) / 1000:.3f}".rstrip("0").rstrip(".")
    return text or "0"
