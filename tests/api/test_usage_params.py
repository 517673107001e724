"""The usage endpoints' range parsing and the live streams' slots (pure; the endpoints
themselves are tested end to end in tests/e2e/test_usage_dashboard.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from faregate.api.usage_params import Range, parse_time, time_range
from faregate.api.usage_stream import StreamSlots
from faregate.errors import InvalidRequest, RateLimited

NOV_1 = int(dt.datetime(2026, 11, 1, tzinfo=dt.UTC).timestamp())
DAY = 86400


def test_times_as_dates_iso_or_posix() -> None:
    assert parse_time("2026-11-01", param="start", end=False) == NOV_1
    assert parse_time("2026-11-01", param="end", end=True) == NOV_1 + DAY  # the whole day
    assert parse_time(str(NOV_1 + 5), param="start", end=False) == NOV_1 + 5
    assert parse_time("2026-11-01T02:00:00+02:00", param="start", end=False) == NOV_1
    assert parse_time("2026-11-01T00:00:30Z", param="start", end=False) == NOV_1 + 30
    for bad in ("2026-11-01T00:00:00", "yesterday", "2026-13-01", "-5", ""):
        with pytest.raises(InvalidRequest) as err:
            parse_time(bad, param="start", end=False)
        assert err.value.param == "start"


def test_default_ranges_and_caps() -> None:
    now = NOV_1 + 10 * DAY + 3600 + 5  # 2026-11-11 01:00:05
    assert time_range(None, None, "1d", now) == Range(NOV_1 + 11 * DAY - 30 * DAY,
                                                       NOV_1 + 11 * DAY)
    assert time_range(None, None, "1h", now) == Range(NOV_1 + 10 * DAY + 7200 - DAY,
                                                       NOV_1 + 10 * DAY + 7200)
    assert time_range(None, None, "1m", now).end - time_range(None, None, "1m", now).start \
        == 3600
    assert time_range("2026-11-01", None, "1d", now).start == NOV_1
    assert time_range("2026-11-01", "2026-11-14", "1h", now) == Range(NOV_1, NOV_1 + 14 * DAY)
    with pytest.raises(InvalidRequest, match="at most 14 days"):
        time_range("2026-11-01", "2026-11-15", "1h", now)
    with pytest.raises(InvalidRequest, match="at most 400 days"):
        time_range("2025-01-01", "2026-11-01", "1d", now)
    with pytest.raises(InvalidRequest, match="start must be before end"):
        time_range("2026-11-02", str(NOV_1), "1d", now)


def test_stream_slots() -> None:
    slots = StreamSlots(per_user_org=2, total=3)
    a1 = slots.acquire("alice", "org_1")
    slots.acquire("alice", "org_1")
    with pytest.raises(RateLimited) as err:
        slots.acquire("alice", "org_1")
    assert err.value.code == "too_many_streams" and err.value.status == 429
    slots.acquire("alice", "org_2")  # another organization: another allowance
    with pytest.raises(RateLimited):
        slots.acquire("bob", "org_1")  # the process is full
    a1()
    a1()  # releasing twice frees one slot only
    assert slots.open_count("alice", "org_1") == 1
    slots.acquire("bob", "org_1")
    with pytest.raises(RateLimited):
        slots.acquire("carol", "org_1")
