"""The circuit breaker's states with an injected clock."""

from __future__ import annotations

from faregate.upstream.breaker import Breaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_only() -> None:
    clock = Clock()
    b = Breaker(threshold=3, cooldown_s=30, clock=clock)
    b.failure()
    b.failure()
    b.success()  # a success in between starts the count again
    b.failure()
    b.failure()
    assert b.state == "closed" and b.available() and b.begin()
    b.failure()
    assert b.state == "open"
    assert not b.available() and not b.begin()
    assert b.open_until == 1030.0


def test_cooldown_then_one_probe_success_closes() -> None:
    clock = Clock()
    b = Breaker(threshold=1, cooldown_s=30, clock=clock)
    b.failure()
    clock.now += 29.9
    assert b.state == "open" and not b.begin()
    clock.now += 0.1
    assert b.state == "half_open" and b.open_until is None
    assert b.available()
    assert b.begin()  # the probe
    assert not b.available() and not b.begin()  # only one at a time
    b.success()
    assert b.state == "closed" and b.begin() and b.begin()


def test_failed_probe_opens_again_for_a_new_cooldown() -> None:
    clock = Clock()
    b = Breaker(threshold=5, cooldown_s=10, clock=clock)
    for _ in range(5):
        b.failure()
    clock.now += 10
    assert b.begin()
    b.failure()  # one failure is enough when half-open
    assert b.state == "open" and b.open_until == clock.now + 10


def test_a_probe_that_never_reports_is_replaced_after_a_cooldown() -> None:
    clock = Clock()
    b = Breaker(threshold=1, cooldown_s=5, clock=clock)
    b.failure()
    clock.now += 5
    assert b.begin()
    clock.now += 4
    assert not b.begin()
    clock.now += 1
    assert b.begin()


def test_health_checks_trip_and_release() -> None:
    clock = Clock()
    b = Breaker(threshold=5, cooldown_s=30, clock=clock)
    b.trip()  # a failed health check opens at once
    assert b.state == "open"
    b.healthy()  # a passing one lets the next request probe, before the cooldown ends
    assert b.state == "half_open" and b.begin()
    b.success()
    assert b.state == "closed"
    b.healthy()  # no effect when closed
    assert b.state == "closed"
