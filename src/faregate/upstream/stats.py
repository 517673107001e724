"""This process's figures and breakers per upstream, kept in memory on the hot path.

Every call to an upstream is recorded here (a few integer additions and the Prometheus
counters, no I/O); the server flushes `rows()` to the upstream_stats table every few seconds
under its instance id (gateway/upstream_watch.py), and the console sums the live instances.
Counters are cumulative since the process started, so a flush is an idempotent overwrite."""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from prometheus_client import Counter, Gauge, Histogram

from faregate.kit.metrics import BREAKER_OPEN, FAILOVERS, UPSTREAM_REQUESTS, UPSTREAM_SECONDS
from faregate.upstream.breaker import DEFAULT_COOLDOWN_S, DEFAULT_THRESHOLD, Breaker, State
from faregate.upstream.routing import Candidate, order

MAX_ERROR_CHARS = 300


class Target(Candidate, Protocol):
    """A route to an upstream, as far as routing and figures care."""

    @property
    def upstream(self) -> str: ...


T = TypeVar("T", bound=Target)


@dataclass(slots=True)
class _Figures:
    name: str
    breaker: Breaker
    # Prometheus children, looked up once per upstream (labels() is not free).
    ok_metric: Counter
    seconds_metric: Histogram
    failovers_metric: Counter
    open_metric: Gauge
    requests: int = 0
    failures: int = 0
    failovers: int = 0
    latency_ms_sum: int = 0
    latency_count: int = 0
    last_error: str | None = None
    last_error_at: dt.datetime | None = None
    health_ok: bool | None = None
    health_checked_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class StatsRow:
    """One upstream's figures in this process, as flushed to upstream_stats."""

    upstream_id: int
    name: str
    requests: int
    failures: int
    failovers: int
    latency_ms_sum: int
    latency_count: int
    breaker_state: State
    breaker_open_until: dt.datetime | None
    last_error: str | None
    last_error_at: dt.datetime | None
    health_ok: bool | None
    health_checked_at: dt.datetime | None


class UpstreamBoard:
    """Breakers and figures of every upstream this process has called or checked."""

    def __init__(self, *, threshold: int = DEFAULT_THRESHOLD,
                 cooldown_s: float = DEFAULT_COOLDOWN_S,
                 clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        self._threshold = threshold
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._rng = rng or random.Random()  # load spreading, not security
        self._by_id: dict[int, _Figures] = {}

    def _get(self, upstream_id: int, name: str) -> _Figures:
        found = self._by_id.get(upstream_id)
        if found is None:
            found = _Figures(name, Breaker(self._threshold, self._cooldown_s, self._clock),
                             UPSTREAM_REQUESTS.labels(name, "ok"),
                             UPSTREAM_SECONDS.labels(name), FAILOVERS.labels(name),
                             BREAKER_OPEN.labels(name))
            self._by_id[upstream_id] = found
        elif found.name != name:  # renamed
            found.name = name
        return found

    def breaker(self, upstream_id: int) -> Breaker | None:
        found = self._by_id.get(upstream_id)
        return found.breaker if found is not None else None

    def _available(self, upstream_id: int) -> bool:
        found = self._by_id.get(upstream_id)
        return found is None or found.breaker.available()

    def order(self, routes: Sequence[T]) -> list[T]:
        """The routes in the order to try them (routing.order with this process's breakers)."""
        if len(routes) == 1:
            return list(routes)
        return order(routes, self._available, self._rng)

    def begin(self, route: Target) -> None:
        """A call is about to go to `route` (claims a half-open breaker's probe)."""
        self._get(route.upstream_id, route.upstream).breaker.begin()

    def answered(self, route: Target, seconds: float, status: int) -> None:
        """The upstream sent a response head: 200, or a 4xx other than 429 (the request's
        fault, not the upstream's: the breaker counts it as a success)."""
        f = self._get(route.upstream_id, route.upstream)
        f.requests += 1
        f.latency_ms_sum += int(seconds * 1000)
        f.latency_count += 1
        f.seconds_metric.observe(seconds)
        if status == 200:
            f.ok_metric.inc()
        else:
            UPSTREAM_REQUESTS.labels(route.upstream, "http_4xx").inc()
            if status in (401, 403):  # our credentials: worth showing the operator
                self._note_error(f, f"HTTP {status}")
        was_open = f.breaker.state != "closed"
        f.breaker.success()
        if was_open:
            self._show_breaker(f)

    def failed(self, route: Target, outcome: str, error: str,
               seconds: float | None = None) -> None:
        """The call failed before the first byte (connect error, timeout, 5xx, 429)."""
        f = self._get(route.upstream_id, route.upstream)
        f.requests += 1
        f.failures += 1
        if seconds is not None:  # a response head came (5xx, 429)
            f.latency_ms_sum += int(seconds * 1000)
            f.latency_count += 1
            f.seconds_metric.observe(seconds)
        UPSTREAM_REQUESTS.labels(route.upstream, outcome).inc()
        self._note_error(f, error)
        f.breaker.failure()
        self._show_breaker(f)

    def broken(self, route: Target, error: str) -> None:
        """An answer that started and then broke (a stream cut short, an unreadable body):
        the call was counted when its head came; this counts the failure."""
        f = self._get(route.upstream_id, route.upstream)
        f.failures += 1
        UPSTREAM_REQUESTS.labels(route.upstream, "broken_stream").inc()
        self._note_error(f, error)
        f.breaker.failure()
        self._show_breaker(f)

    def failover(self, route: Target) -> None:
        """A request moved on from `route` to the next upstream."""
        f = self._get(route.upstream_id, route.upstream)
        f.failovers += 1
        f.failovers_metric.inc()

    def checked(self, upstream_id: int, name: str, error: str | None) -> None:
        """A health check's result: a failure opens the breaker at once; a success lets the
        next request probe an open one."""
        f = self._get(upstream_id, name)
        f.health_ok = error is None
        f.health_checked_at = dt.datetime.now(dt.UTC)
        if error is None:
            f.breaker.healthy()
        else:
            self._note_error(f, f"health check: {error}")
            f.breaker.trip()
        self._show_breaker(f)

    def rows(self) -> list[StatsRow]:
        now_wall, now = dt.datetime.now(dt.UTC), self._clock()
        out: list[StatsRow] = []
        for upstream_id, f in self._by_id.items():
            state = f.breaker.state
            until = f.breaker.open_until
            self._show_breaker(f)
            out.append(StatsRow(
                upstream_id, f.name, f.requests, f.failures, f.failovers, f.latency_ms_sum,
                f.latency_count, state,
                now_wall + dt.timedelta(seconds=until - now) if until is not None else None,
                f.last_error, f.last_error_at, f.health_ok, f.health_checked_at))
        return out

    def _note_error(self, f: _Figures, error: str) -> None:
        f.last_error = error[:MAX_ERROR_CHARS]
        f.last_error_at = dt.datetime.now(dt.UTC)

    @staticmethod
    def _show_breaker(f: _Figures) -> None:
        f.open_metric.set(1 if f.breaker.state == "open" else 0)
