"""Roll usage records up into per-minute, per-hour and per-day sums.

The worker reads the records past a watermark, adds them to `usage_rollups` and moves the
watermark, in one transaction: each record is counted exactly once, however many workers run
(the watermark row is locked) and whatever crashes. Settlement never touches a rollup row, so
the hot path does not contend on them.

Which records are safe to read: on PostgreSQL a record's id is taken when it is inserted, not
when its transaction commits, so ids commit out of order. Each record carries the id of its
inserting transaction (`txid`); every transaction below the snapshot's `xmin` has ended, so
no record with such a txid can still appear. The worker reads those, in (txid, id) order. On
SQLite writers are serialized, so ids commit in order and the id alone is the watermark."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from faregate.db.schema import rollup_state, usage_records, usage_rollups

STATE = "usage"
WIDTHS: dict[str, int] = {"1m": 60, "1h": 3600, "1d": 86400}
BATCH = 20_000
_SUMS = ("requests", "failed_requests", "input_tokens", "cached_tokens", "output_tokens",
         "cost_nano", "charged_nano", "writeoff_nano")
Dims = tuple[str, int, str, str, str, str]  # org, minute, project, key, model, endpoint


@dataclass(frozen=True, slots=True)
class Watermark:
    txid: int
    id: int
    records: int


def _epoch(conn: sa.Connection) -> sa.ColumnElement[int]:
    col = usage_records.c.settled_at
    if conn.dialect.name == "sqlite":
        return sa.cast(sa.func.strftime("%s", col), sa.BigInteger)
    return sa.cast(sa.func.floor(sa.extract("epoch", col)), sa.BigInteger)


def _horizon(conn: sa.Connection) -> int | None:
    """The lowest transaction id that may still be running (PostgreSQL), else None."""
    if conn.dialect.name != "postgresql":
        return None
    return int(conn.exec_driver_sql(
        "SELECT CAST(CAST(pg_snapshot_xmin(pg_current_snapshot()) AS TEXT) AS BIGINT)"
    ).scalar_one())


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _lock_state(conn: sa.Connection) -> Watermark:
    query = sa.select(rollup_state).where(rollup_state.c.name == STATE)
    if conn.dialect.name != "sqlite":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:  # the first run; another worker may be inserting it too
        conn.execute(_insert(conn, rollup_state).values(
            name=STATE, last_txid=0, last_id=0, records=0, updated_at=dt.datetime.now(dt.UTC))
            .on_conflict_do_nothing())
        row = conn.execute(query).first()
    assert row is not None
    return Watermark(int(row.last_txid), int(row.last_id), int(row.records))


def watermark(conn: sa.Connection) -> Watermark:
    row = conn.execute(sa.select(rollup_state).where(rollup_state.c.name == STATE)).first()
    return Watermark(0, 0, 0) if row is None else Watermark(
        int(row.last_txid), int(row.last_id), int(row.records))


def _past(conn: sa.Connection, mark: Watermark) -> sa.ColumnElement[bool]:
    """Records after the watermark (PostgreSQL: in (txid, id) order)."""
    r = usage_records.c
    if conn.dialect.name == "sqlite":
        return r.id > mark.id
    return sa.tuple_(r.txid, r.id) > sa.tuple_(sa.literal(mark.txid), sa.literal(mark.id))


def _batch_end(conn: sa.Connection, mark: Watermark, horizon: int | None,
               batch: int) -> Watermark | None:
    r = usage_records.c
    if horizon is None:
        ids = sa.select(r.id).where(_past(conn, mark)).order_by(r.id).limit(batch).subquery()
        row = conn.execute(sa.select(sa.func.max(ids.c.id), sa.func.count())).one()
        return None if row[0] is None else Watermark(0, int(row[0]), int(row[1]))
    keys = (sa.select(r.txid, r.id).where(r.txid < horizon, _past(conn, mark))
            .order_by(r.txid, r.id).limit(batch).subquery())
    last = conn.execute(sa.select(keys.c.txid, keys.c.id)
                        .order_by(keys.c.txid.desc(), keys.c.id.desc()).limit(1)).first()
    if last is None:
        return None
    count = conn.execute(sa.select(sa.func.count()).select_from(keys)).scalar_one()
    return Watermark(int(last.txid), int(last.id), int(count))


def _upto(conn: sa.Connection, end: Watermark) -> sa.ColumnElement[bool]:
    r = usage_records.c
    if conn.dialect.name == "sqlite":
        return r.id <= end.id
    return sa.tuple_(r.txid, r.id) <= sa.tuple_(sa.literal(end.txid), sa.literal(end.id))


def _minute_sums(conn: sa.Connection, mark: Watermark,
                 end: Watermark) -> dict[Dims, list[int]]:
    r = usage_records.c
    minute = (_epoch(conn) // 60 * 60).label("minute")
    project = sa.func.coalesce(r.project_id, "")
    key = sa.func.coalesce(r.api_key_id, "")
    failed = sa.case((r.status == "ok", 0), else_=1)
    dims = (r.organization_id, minute, project, key, r.model, r.endpoint)
    rows = conn.execute(
        sa.select(*dims, sa.func.count(), sa.func.sum(failed), sa.func.sum(r.prompt_tokens),
                  sa.func.sum(r.cached_tokens), sa.func.sum(r.completion_tokens),
                  sa.func.sum(r.cost_nano), sa.func.sum(r.charged_nano),
                  sa.func.sum(r.writeoff_nano))
        .where(_past(conn, mark), _upto(conn, end))
        .group_by(*dims)).all()
    return {(row[0], int(row[1]), row[2], row[3], row[4], row[5]): [int(v) for v in row[6:]]
            for row in rows}


def _upsert(conn: sa.Connection, sums: dict[Dims, list[int]]) -> None:
    per_width: dict[tuple[str, str, int, str, str, str, str], list[int]] = defaultdict(
        lambda: [0] * len(_SUMS))
    for (org, minute, project, key, model, endpoint), values in sums.items():
        for width, seconds in WIDTHS.items():
            acc = per_width[(width, org, minute - minute % seconds, project, key, model,
                             endpoint)]
            for i, v in enumerate(values):
                acc[i] += v
    if not per_width:
        return
    rows = [{"width": k[0], "organization_id": k[1], "bucket_start": k[2], "project_id": k[3],
             "api_key_id": k[4], "model": k[5], "endpoint": k[6], **dict(zip(_SUMS, v,
                                                                           strict=True))}
            for k, v in sorted(per_width.items())]
    stmt = _insert(conn, usage_rollups)
    stmt = stmt.on_conflict_do_update(
        index_elements=[c for c in usage_rollups.primary_key.columns],
        set_={name: usage_rollups.c[name] + stmt.excluded[name] for name in _SUMS})
    conn.execute(stmt, rows)


def roll_up(conn: sa.Connection, batch: int = BATCH) -> int:
    """Add the next batch of settled usage records to the rollups; return how many."""
    mark = _lock_state(conn)
    end = _batch_end(conn, mark, _horizon(conn), batch)
    if end is None:
        return 0
    _upsert(conn, _minute_sums(conn, mark, end))
    conn.execute(rollup_state.update().where(rollup_state.c.name == STATE).values(
        last_txid=end.txid, last_id=end.id, records=mark.records + end.records,
        updated_at=dt.datetime.now(dt.UTC)))
    return end.records


def rollup_problems(conn: sa.Connection) -> list[str]:
    """Each organization's rollups, at every width, equal the sums of its usage records up to
    the watermark, to the unit (part of `faregate ledger verify`)."""
    mark = watermark(conn)
    r = usage_records.c
    failed = sa.case((r.status == "ok", 0), else_=1)
    cols = (sa.func.count(), sa.func.sum(failed), sa.func.sum(r.prompt_tokens),
            sa.func.sum(r.cached_tokens), sa.func.sum(r.completion_tokens),
            sa.func.sum(r.cost_nano), sa.func.sum(r.charged_nano), sa.func.sum(r.writeoff_nano))
    query = sa.select(r.organization_id, *cols).where(_upto(conn, mark)).group_by(
        r.organization_id)
    records = {row[0]: tuple(int(v or 0) for v in row[1:]) for row in conn.execute(query)}
    problems: list[str] = []
    u = usage_rollups.c
    for width in WIDTHS:
        rolled = {row[0]: tuple(int(v or 0) for v in row[1:]) for row in conn.execute(
            sa.select(u.organization_id, *(sa.func.sum(u[name]) for name in _SUMS))
            .where(u.width == width).group_by(u.organization_id))}
        wrong = sorted(k for k in records.keys() | rolled.keys()
                       if records.get(k) != rolled.get(k))
        if wrong:
            problems.append(
                f"{len(wrong)} organization(s) whose {width} usage rollups differ from their "
                f"usage records, e.g. {wrong[0]}: rollups {rolled.get(wrong[0])} != records "
                f"{records.get(wrong[0])} ({', '.join(_SUMS)})")
    if mark.records != sum(v[0] for v in records.values()):
        problems.append(f"the rollup watermark counts {mark.records} records, but "
                        f"{sum(v[0] for v in records.values())} are at or below it")
    return problems
