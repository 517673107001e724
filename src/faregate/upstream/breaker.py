"""A circuit breaker per upstream, per server process.

closed -> open after `threshold` consecutive failures (or at once when a health check fails);
open -> half-open when the cooldown has passed: one request (the probe) goes through;
half-open -> closed when the probe succeeds, back to open (a new cooldown) when it fails.

Pure and synchronous: the clock is injected, nothing here waits or touches the network. Each
process keeps its own breakers (no shared state on the hot path); the console shows "open" when
any live process reports it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half_open"]

DEFAULT_THRESHOLD = 5
DEFAULT_COOLDOWN_S = 30.0


class Breaker:
    __slots__ = ("_clock", "_failures", "_open_until", "_probe_at", "_state", "cooldown_s",
                 "threshold")

    def __init__(self, threshold: int = DEFAULT_THRESHOLD,
                 cooldown_s: float = DEFAULT_COOLDOWN_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if threshold < 1 or cooldown_s < 0:
            raise ValueError("need threshold >= 1 and cooldown_s >= 0")
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._state: State = "closed"
        self._failures = 0  # consecutive
        self._open_until = 0.0
        self._probe_at: float | None = None  # when the half-open probe was let through

    @property
    def state(self) -> State:
        """The state now (an open breaker whose cooldown has passed reads as half-open)."""
        if self._state == "open" and self._clock() >= self._open_until:
            self._state = "half_open"
            self._probe_at = None
        return self._state

    @property
    def open_until(self) -> float | None:
        """The clock reading at which an open breaker lets a probe through; None unless open."""
        return self._open_until if self.state == "open" else None

    def available(self) -> bool:
        """Would a request be let through now? (Does not claim the half-open probe.)"""
        state = self.state
        if state == "closed":
            return True
        if state == "open":
            return False
        return self._probe_at is None or self._probe_stale()

    def begin(self) -> bool:
        """A request is about to be sent: True when the breaker lets it through (claiming the
        probe when half-open). A probe that never reported back is replaced after a cooldown."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and (self._probe_at is None or self._probe_stale()):
            self._probe_at = self._clock()
            return True
        return False

    def success(self) -> None:
        self._state = "closed"
        self._failures = 0
        self._probe_at = None

    def failure(self) -> None:
        """A failed call; opens the breaker after `threshold` in a row, or at once when it was
        the half-open probe."""
        self._failures += 1
        if self.state == "half_open" or self._failures >= self.threshold:
            self.trip()

    def trip(self) -> None:
        """Open now (a failed health check, or too many failures) for one cooldown."""
        self._state = "open"
        self._open_until = self._clock() + self.cooldown_s
        self._probe_at = None

    def healthy(self) -> None:
        """A health check passed: an open breaker goes half-open at once, so that the next
        request probes it (real requests, not the health check, close it)."""
        if self.state == "open":
            self._state = "half_open"
            self._probe_at = None

    def _probe_stale(self) -> bool:
        return self._probe_at is not None and self._clock() - self._probe_at >= \
            max(self.cooldown_s, 1.0)
