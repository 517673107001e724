"""The in-memory board: figures per upstream, breakers from call outcomes and health checks."""

from __future__ import annotations

import random
from dataclasses import dataclass

from faregate.upstream.stats import UpstreamBoard


@dataclass(frozen=True)
class R:
    upstream: str
    upstream_id: int
    priority: int = 0
    weight: int = 1


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


A, B = R("board-a", 101), R("board-b", 102)


def test_figures_and_breaker_from_outcomes() -> None:
    clock = Clock()
    board = UpstreamBoard(threshold=2, cooldown_s=10, clock=clock, rng=random.Random(0))
    board.begin(A)
    board.answered(A, 0.25, 200)
    board.answered(A, 0.05, 400)  # the request's fault: not a failure
    board.failed(A, "connect_error", "could not connect")
    board.failover(A)
    board.failed(A, "http_5xx", "HTTP 503", 0.1)
    rows = {r.name: r for r in board.rows()}
    a = rows["board-a"]
    assert (a.requests, a.failures, a.failovers) == (4, 2, 1)
    assert (a.latency_ms_sum, a.latency_count) == (400, 3)
    assert a.breaker_state == "open" and a.breaker_open_until is not None
    assert a.last_error == "HTTP 503" and a.last_error_at is not None
    # open goes last
    assert board.order([A, B]) == [B, A]
    clock.now = 10
    assert board.rows()[0].breaker_state == "half_open"
    board.begin(A)
    board.answered(A, 0.1, 200)
    assert board.rows()[0].breaker_state == "closed"


def test_a_broken_stream_counts_as_a_failure() -> None:
    board = UpstreamBoard(threshold=1, cooldown_s=10, clock=Clock())
    board.answered(B, 0.01, 200)
    board.broken(B, "the stream broke off")
    (b,) = board.rows()
    assert (b.requests, b.failures) == (1, 1)
    assert b.breaker_state == "open"


def test_health_checks() -> None:
    board = UpstreamBoard(threshold=5, cooldown_s=10, clock=Clock())
    board.checked(A.upstream_id, A.upstream, "could not connect")
    (a,) = board.rows()
    assert a.health_ok is False and a.breaker_state == "open"
    assert a.last_error == "health check: could not connect"
    board.checked(A.upstream_id, A.upstream, None)
    (a,) = board.rows()
    assert a.health_ok is True and a.breaker_state == "half_open"
