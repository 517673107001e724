"""The in-memory GCRA limiter: bursts, refill, all-or-nothing, headers' numbers."""

from __future__ import annotations

from faregate.throttle.rates import Limit, MemoryRates, duration


def test_a_burst_of_limit_then_refused_with_the_time_to_wait() -> None:
    rates = MemoryRates()
    rpm = Limit("org:rpm", 3, 1)
    got = [rates.hit_now([rpm], now_ms=0) for _ in range(4)]
    assert [d.allowed for d in got] == [True, True, True, False]
    assert [d.outcomes[0].remaining for d in got] == [2, 1, 0, 0]
    refused = got[3].outcomes[0]
    assert refused.used == 3 and refused.limit == 3
    assert refused.retry_ms == 20_000  # one request refills every 60 s / 3
    assert refused.reset_ms == 60_000  # full again after a minute
    # After the announced wait, it passes; not a moment before.
    assert not rates.hit_now([rpm], now_ms=19_999).allowed
    assert rates.hit_now([rpm], now_ms=20_000).allowed


def test_a_refusal_takes_nothing_from_any_bucket() -> None:
    rates = MemoryRates()
    org = Limit("org:rpm", 5, 1)
    key = Limit("key:rpm", 1, 1)
    assert rates.hit_now([org, key], now_ms=0).allowed
    refused = rates.hit_now([org, key], now_ms=0)
    assert not refused.allowed
    assert refused.outcomes[0].remaining == 4  # the org's bucket was not touched
    # Another key of the same organization still has the org's 4.
    other = Limit("key2:rpm", 1, 1)
    assert rates.hit_now([org, other], now_ms=0).outcomes[0].remaining == 3


def test_tokens_are_taken_by_cost() -> None:
    rates = MemoryRates()
    tpm = Limit("org:tpm", 1000, 400)
    assert rates.hit_now([tpm], now_ms=0).outcomes[0].remaining == 600
    assert rates.hit_now([tpm], now_ms=0).outcomes[0].remaining == 200
    refused = rates.hit_now([tpm], now_ms=0)
    assert not refused.allowed
    assert refused.outcomes[0].retry_ms == 12_000  # 200 tokens short at 1000/min


def test_durations_read_like_openais() -> None:
    assert duration(20) == "20ms"
    assert duration(0.2) == "1ms"
    assert duration(1000) == "1s"
    assert duration(8640) == "8.64s"
    assert duration(360_000) == "6m0s"
    assert duration(90_500) == "1m30.5s"
    assert duration(3_723_000) == "1h2m3s"
