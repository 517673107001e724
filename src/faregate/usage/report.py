"""Usage reports, read only from the rollups (never from the raw usage records).

Two questions: `buckets` answers "what happened in each minute / hour / day of a range",
`totals` answers "what happened over the whole range". Both group by any of project, key,
model and endpoint and filter on the same. A report lags the usage records by the rollup job's
interval. Times are POSIX seconds, UTC; a bucket holds the requests settled in it.

`totals` reads the coarsest rollups that tile the range: a 31-day range touches 31 day rows
per group (plus hours and minutes at ragged edges), not 44,640 minute rows. Both functions
issue one GROUP BY query over the rollups' primary key prefix (width, organization, start)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from faregate.db.schema import usage_rollups
from faregate.usage.rollup import WIDTHS

GroupKey = Literal["project_id", "api_key_id", "model", "endpoint"]
Width = Literal["1m", "1h", "1d"]
GROUP_KEYS: tuple[GroupKey, ...] = ("project_id", "api_key_id", "model", "endpoint")
SUM_NAMES = ("requests", "failed_requests", "input_tokens", "cached_tokens", "output_tokens",
             "cost_nano", "charged_nano", "writeoff_nano")
_MINUTE, _HOUR, _DAY = WIDTHS["1m"], WIDTHS["1h"], WIDTHS["1d"]


@dataclass(frozen=True, slots=True)
class Filters:
    """Keep only usage whose value is one of these (an empty tuple: no filter). '' selects
    usage with no project / no key."""

    project_ids: tuple[str, ...] = ()
    api_key_ids: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Sums:
    requests: int
    failed_requests: int
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    cost_nano: int
    charged_nano: int
    writeoff_nano: int


@dataclass(frozen=True, slots=True)
class Row:
    group: dict[str, str | None]  # only the grouped keys; '' in the table becomes None
    sums: Sums


@dataclass(frozen=True, slots=True)
class Bucket:
    start: int  # POSIX seconds, inclusive
    end: int  # exclusive
    rows: list[Row]  # empty when nothing happened


def _group_columns(group_by: Sequence[GroupKey]) -> list[sa.ColumnElement[str]]:
    unknown = [k for k in group_by if k not in GROUP_KEYS]
    if unknown:
        raise ValueError(f"cannot group usage by {unknown[0]!r}")
    return [usage_rollups.c[k] for k in dict.fromkeys(group_by)]


def _filter_clauses(filters: Filters) -> list[sa.ColumnElement[bool]]:
    u = usage_rollups.c
    pairs = ((u.project_id, filters.project_ids), (u.api_key_id, filters.api_key_ids),
             (u.model, filters.models), (u.endpoint, filters.endpoints))
    return [col.in_(values) for col, values in pairs if values]


def _sum_columns() -> list[sa.ColumnElement[int]]:
    return [sa.func.sum(usage_rollups.c[name]) for name in SUM_NAMES]


def _row(keys: list[str], values: Sequence[Any]) -> Row:
    group = {k: (str(v) if v else None) for k, v in zip(keys, values[:len(keys)], strict=True)}
    sums = Sums(*[int(v or 0) for v in values[len(keys):]])
    return Row(group, sums)


def _floor(t: int, width: int) -> int:
    return t - t % width


def _ceil(t: int, width: int) -> int:
    return -_floor(-t, width)


def tiles(start: int, end: int) -> list[tuple[int, int, int]]:
    """(width seconds, first start, end) runs of rollup buckets that tile [start, end) exactly
    once the bounds are rounded out to whole minutes: whole days in the middle, whole hours
    next to them, minutes at the ragged edges."""
    def tile(s: int, e: int) -> list[tuple[int, int, int]]:
        if s >= e:
            return []
        for width in (_DAY, _HOUR):
            a, b = _ceil(s, width), _floor(e, width)
            if a < b:
                return [*tile(s, a), (width, a, b), *tile(b, e)]
        return [(_MINUTE, s, e)]
    return tile(_floor(start, _MINUTE), _ceil(end, _MINUTE)) if start < end else []


def _width_name(seconds: int) -> str:
    return next(name for name, s in WIDTHS.items() if s == seconds)


def buckets(conn: sa.Connection, organization_id: str, *, start: int, end: int, width: Width,
            group_by: Sequence[GroupKey] = (), filters: Filters = Filters(),
            limit: int | None = None) -> list[Bucket]:
    """Every bucket of `width` from `start` (rounded down to the width) while its start is
    before `end`, at most `limit` of them, with one row per group that had usage in it."""
    seconds = WIDTHS[width]
    first = _floor(start, seconds)
    count = max(0, _ceil(end - first, seconds) // seconds)
    if limit is not None:
        count = min(count, max(0, limit))
    if count == 0:
        return []
    stop = first + count * seconds
    u = usage_rollups.c
    groups = _group_columns(group_by)
    keys = [str(c.key) for c in groups]
    query = (sa.select(u.bucket_start, *groups, *_sum_columns())
             .where(u.width == width, u.organization_id == organization_id,
                    u.bucket_start >= first, u.bucket_start < stop, *_filter_clauses(filters))
             .group_by(u.bucket_start, *groups)
             .order_by(u.bucket_start, *groups))
    rows: dict[int, list[Row]] = {}
    for r in conn.execute(query):
        rows.setdefault(int(r[0]), []).append(_row(keys, tuple(r)[1:]))
    return [Bucket(s, s + seconds, rows.get(s, []))
            for s in range(first, stop, seconds)]


def totals(conn: sa.Connection, organization_id: str, *, start: int, end: int,
           group_by: Sequence[GroupKey] = (), filters: Filters = Filters()) -> list[Row]:
    """One row per group with usage in [start, end) (a non-empty range's bounds rounded out to
    whole minutes, so this equals the sum of `buckets(..., width="1m")` over the same range);
    an empty list when nothing happened."""
    runs = tiles(start, end)
    if not runs:
        return []
    u = usage_rollups.c
    groups = _group_columns(group_by)
    keys = [str(c.key) for c in groups]
    ranges = sa.or_(*(sa.and_(u.width == _width_name(w), u.organization_id == organization_id,
                              u.bucket_start >= a, u.bucket_start < b) for w, a, b in runs))
    query = (sa.select(*groups, *_sum_columns())
             .where(ranges, *_filter_clauses(filters))
             .group_by(*groups).order_by(*groups))
    if not groups:
        query = query.having(sa.func.count() > 0)
    return [_row(keys, tuple(r)) for r in conn.execute(query)]
