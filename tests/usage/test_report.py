"""Usage reports read from the rollups equal the sums of the usage records they cover, for any
range, width, grouping and filter."""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections import defaultdict
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from faregate.db.schema import usage_records
from faregate.usage.report import (
    GROUP_KEYS,
    Filters,
    GroupKey,
    Row,
    Sums,
    buckets,
    tiles,
    totals,
)
from faregate.usage.rollup import WIDTHS, roll_up

T0 = 1_764_300_000 + 1234  # a ragged moment (2025-11-28, not on any boundary)
DAY = 86_400


@dataclass(frozen=True)
class Rec:
    org: str
    t: int
    project_id: str | None
    api_key_id: str | None
    model: str
    endpoint: str
    ok: bool
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    charged_nano: int
    writeoff_nano: int

    def value(self, key: str) -> str | None:
        return str(getattr(self, key)) if getattr(self, key) is not None else None


def _records(rng: random.Random, n: int, span_s: int) -> list[Rec]:
    out = []
    for _ in range(n):
        out.append(Rec(
            org=rng.choice(["org_a", "org_a", "org_b"]), t=T0 + rng.randrange(span_s),
            project_id=rng.choice(["proj_1", "proj_2", None]),
            api_key_id=rng.choice(["key_1", "key_2", "key_3", None]),
            model=rng.choice(["m-chat", "m-embed"]),
            endpoint=rng.choice(["chat", "completions", "responses", "embeddings"]),
            ok=rng.random() < 0.8, input_tokens=rng.randrange(0, 5000),
            cached_tokens=rng.randrange(0, 50), output_tokens=rng.randrange(0, 900),
            charged_nano=rng.randrange(0, 10**7), writeoff_nano=rng.choice([0, 0, 0, 17])))
    # records at exact boundaries too
    for t in (T0 - T0 % DAY + DAY, T0 - T0 % 3600 + 3600, T0 - T0 % 60 + 60):
        out.append(Rec("org_a", t, "proj_1", "key_1", "m-chat", "chat", True, 1, 0, 1, 5, 0))
    return out


def _insert(engine: Engine, recs: list[Rec]) -> None:
    rows = [{
        "request_id": f"req_{i}", "organization_id": r.org, "api_key_id": r.api_key_id,
        "account_id": 1, "endpoint": r.endpoint, "model": r.model, "upstream": "u",
        "prompt_tokens": r.input_tokens, "cached_tokens": r.cached_tokens,
        "completion_tokens": r.output_tokens, "usage_source": "upstream",
        "cost_nano": r.charged_nano + r.writeoff_nano, "charged_nano": r.charged_nano,
        "writeoff_nano": r.writeoff_nano, "status": "ok" if r.ok else "upstream_error",
        "streamed": False, "latency_ms": 1, "settlement_id": f"s_{i}",
        # a fraction of a second past the moment: buckets go by whole seconds
        "settled_at": dt.datetime.fromtimestamp(r.t, dt.UTC) + dt.timedelta(microseconds=999),
        "project_id": r.project_id,
    } for i, r in enumerate(recs)]
    with engine.begin() as conn:
        conn.execute(usage_records.insert(), rows)
        while roll_up(conn, batch=97):
            pass


def _sums(recs: list[Rec]) -> Sums:
    return Sums(
        requests=len(recs), failed_requests=sum(not r.ok for r in recs),
        input_tokens=sum(r.input_tokens for r in recs),
        cached_tokens=sum(r.cached_tokens for r in recs),
        output_tokens=sum(r.output_tokens for r in recs),
        cost_nano=sum(r.charged_nano + r.writeoff_nano for r in recs),
        charged_nano=sum(r.charged_nano for r in recs),
        writeoff_nano=sum(r.writeoff_nano for r in recs))


def _matches(r: Rec, f: Filters) -> bool:
    pairs = ((r.project_id, f.project_ids), (r.api_key_id, f.api_key_ids), (r.model, f.models),
             (r.endpoint, f.endpoints))
    return all(not values or (v or "") in values for v, values in pairs)


def _expected(recs: list[Rec], org: str, lo: int, hi: int, group_by: tuple[GroupKey, ...],
              f: Filters) -> list[Row]:
    groups: dict[tuple[str | None, ...], list[Rec]] = defaultdict(list)
    for r in recs:
        if r.org == org and lo <= r.t < hi and _matches(r, f):
            groups[tuple(r.value(k) for k in group_by)].append(r)
    return sorted((Row(dict(zip(group_by, k, strict=True)), _sums(v)) for k, v in groups.items()),
                  key=lambda row: tuple(v or "" for v in row.group.values()))


def _sorted(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda row: tuple(v or "" for v in row.group.values()))


GROUPINGS: list[tuple[GroupKey, ...]] = [
    c for n in range(len(GROUP_KEYS) + 1) for c in itertools.combinations(GROUP_KEYS, n)]
FILTERS = [Filters(), Filters(project_ids=("proj_1",)), Filters(project_ids=("",)),
           Filters(api_key_ids=("key_1", "key_3")), Filters(models=("m-embed",)),
           Filters(endpoints=("chat", "completions", "responses"), project_ids=("proj_2", "")),
           Filters(models=("nope",))]


@pytest.fixture
def recs(engine: Engine) -> list[Rec]:
    out = _records(random.Random(5), 1500, 4 * DAY)
    _insert(engine, out)
    return out


def test_totals_equal_the_records_for_any_range_grouping_and_filter(
        engine: Engine, recs: list[Rec]) -> None:
    rng = random.Random(7)
    ranges = [(T0 - DAY, T0 + 5 * DAY), (T0, T0 + 1), (T0 + 100, T0 + 100)]
    ranges += [tuple(sorted((T0 + rng.randrange(-3600, 4 * DAY + 3600),
                             T0 + rng.randrange(-3600, 4 * DAY + 3600)))) for _ in range(6)]
    with engine.connect() as conn:
        for (start, end), group_by, f in itertools.product(ranges, GROUPINGS, FILTERS):
            lo, hi = start - start % 60, -((-end) // 60) * 60  # rounded out to minutes
            for org in ("org_a", "org_b"):
                got = totals(conn, org, start=start, end=end, group_by=group_by, filters=f)
                want = _expected(recs, org, lo, hi, group_by, f) if start < end else []
                assert _sorted(got) == want, (
                    start, end, group_by, f)


@pytest.mark.parametrize("width", list(WIDTHS))
def test_buckets_equal_the_records_in_each_bucket(engine: Engine, recs: list[Rec],
                                                  width: str) -> None:
    seconds = WIDTHS[width]
    span = {"1m": (T0 + 3000, T0 + 3000 + 90 * 60), "1h": (T0 - 7200, T0 + 2 * DAY),
            "1d": (T0 - DAY, T0 + 6 * DAY)}[width]
    with engine.connect() as conn:
        for group_by, f in itertools.product(GROUPINGS[::3], FILTERS):
            got = buckets(conn, "org_a", start=span[0], end=span[1], width=width,  # type: ignore[arg-type]
                          group_by=group_by, filters=f)
            first = span[0] - span[0] % seconds
            assert [b.start for b in got] == list(range(first, span[1], seconds))
            for b in got:
                assert b.end == b.start + seconds
                assert _sorted(b.rows) == _expected(recs, "org_a", b.start, b.end, group_by, f)
            if f == Filters():
                assert sum(bool(b.rows) for b in got) > 1


def test_buckets_limit_empty_buckets_and_alignment(engine: Engine, recs: list[Rec]) -> None:
    with engine.connect() as conn:
        day0 = T0 - T0 % DAY
        got = buckets(conn, "org_a", start=day0 - 3 * DAY + 5, end=day0 + 30 * DAY, width="1d",
                      limit=5)
        assert [b.start for b in got] == [day0 + (i - 3) * DAY for i in range(5)]
        assert [bool(b.rows) for b in got] == [False, False, False, True, True]
        assert got[3].rows[0].group == {}
        assert buckets(conn, "org_a", start=day0, end=day0, width="1h") == []
        assert buckets(conn, "org_a", start=day0, end=day0 + DAY, width="1h", limit=0) == []
        assert len(buckets(conn, "org_a", start=day0, end=day0 + 1, width="1h")) == 1
        # nothing for an organization without usage, and nothing for a filter matching nothing
        assert all(not b.rows for b in buckets(conn, "org_none", start=day0, end=day0 + 3 * DAY,
                                               width="1d"))
        assert totals(conn, "org_none", start=day0, end=day0 + 3 * DAY) == []
        # no project / no key is reported as None
        rows = totals(conn, "org_a", start=day0, end=day0 + 9 * DAY, group_by=["project_id"])
        assert [r.group["project_id"] for r in rows] == [None, "proj_1", "proj_2"]
        with pytest.raises(ValueError, match="cannot group usage by 'user_id'"):
            totals(conn, "org_a", start=day0, end=day0 + DAY, group_by=["user_id"])  # type: ignore[list-item]


def test_totals_tile_a_month_with_few_runs() -> None:
    start, end = T0, T0 + 31 * DAY + 5 * 3600 + 17 * 60 + 3
    runs = tiles(start, end)
    assert [w for w, _, _ in runs] == [60, 3600, DAY, 3600, 60]
    # the runs cover [start rounded down, end rounded up) exactly once, in order
    assert runs[0][1] == start - start % 60 and runs[-1][2] == end - end % 60 + 60
    assert all(a[2] == b[1] for a, b in itertools.pairwise(runs))
    assert all(a % w == 0 and b % w == 0 and a < b for w, a, b in runs)
    rows_read = sum((b - a) // w for w, a, b in runs)
    assert rows_read < 31 + 24 * 2 + 60 * 2
    assert tiles(0, 3 * DAY) == [(DAY, 0, 3 * DAY)]
    assert tiles(30, 90) == [(60, 0, 120)]
    assert tiles(5, 5) == [] and tiles(6, 5) == []


def test_totals_of_a_range_equal_the_sum_of_its_buckets(engine: Engine,
                                                         recs: list[Rec]) -> None:
    start, end = T0 + 777, T0 + 3 * DAY + 4321
    with engine.connect() as conn:
        minute = buckets(conn, "org_a", start=start, end=end, width="1m", group_by=["model"])
        total = {r.group["model"]: r.sums for r in totals(conn, "org_a", start=start, end=end,
                                                          group_by=["model"])}
    acc: dict[str | None, list[int]] = defaultdict(lambda: [0] * 8)
    for b in minute:
        for r in b.rows:
            for i, name in enumerate(Sums.__slots__):
                acc[r.group["model"]][i] += getattr(r.sums, name)
    assert {k: Sums(*v) for k, v in acc.items()} == total
    with engine.connect() as conn:
        q = sa.select(sa.func.count()).select_from(usage_records)
        assert conn.execute(q).scalar_one() == len(recs)
