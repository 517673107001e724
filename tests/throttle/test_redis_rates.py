"""The Redis limiter: the same answers as in memory, shared by clients, and a fallback to memory
when Redis is unreachable. Against a real Redis (fails under CI when there is none)."""

from __future__ import annotations

import asyncio
import logging
import secrets

import pytest

from faregate.throttle.rates import Limit
from faregate.throttle.redis_rates import RedisRates


async def test_limits_hold_across_clients(redis_url: str) -> None:
    prefix = f"t:{secrets.token_hex(4)}:"
    a, b = RedisRates(redis_url, prefix=prefix), RedisRates(redis_url, prefix=prefix)
    try:
        rpm = Limit("{org}:rpm", 5, 1)
        got = [await (a if i % 2 else b).hit([rpm]) for i in range(10)]
        assert [d.allowed for d in got] == [True] * 5 + [False] * 5
        assert [d.outcomes[0].remaining for d in got[:5]] == [4, 3, 2, 1, 0]
        refused = got[5].outcomes[0]
        assert refused.used == 5
        assert 0 < refused.retry_ms <= 12_000
        assert 48_000 < refused.reset_ms <= 60_000
    finally:
        await a.close()
        await b.close()


async def test_all_or_nothing_and_concurrent_checks(redis_url: str) -> None:
    prefix = f"t:{secrets.token_hex(4)}:"
    rates = RedisRates(redis_url, prefix=prefix)
    try:
        org, key = Limit("{o}:tpm", 1000, 300), Limit("{o}:key:k:tpm", 300, 300)
        assert (await rates.hit([org, key])).allowed
        refused = await rates.hit([org, key])
        assert not refused.allowed
        assert refused.outcomes[0].remaining == 700  # the org's bucket was not touched
        # 20 concurrent requests at 10 RPM: exactly 10 pass (the script is atomic).
        rpm = Limit("{o}:rpm", 10, 1)
        results = await asyncio.gather(*(rates.hit([rpm]) for _ in range(20)))
        assert sum(d.allowed for d in results) == 10
    finally:
        await rates.close()


async def test_unreachable_redis_falls_back_to_memory(caplog: pytest.LogCaptureFixture) -> None:
    rates = RedisRates("redis://127.0.0.1:1/0", timeout_s=0.2)  # nothing listens on port 1
    try:
        rpm = Limit("{o}:rpm", 2, 1)
        with caplog.at_level(logging.WARNING, logger="faregate.throttle"):
            got = [await rates.hit([rpm]) for _ in range(3)]
        assert [d.allowed for d in got] == [True, True, False]
        assert any("Redis unreachable" in r.getMessage() for r in caplog.records)
    finally:
        await rates.close()
