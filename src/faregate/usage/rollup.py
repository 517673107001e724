"""Roll usage records up into per-minute, per-hour and per-day sums.

The worker reads the records past a watermark (an id), adds them to `usage_rollups` and moves
the watermark, in one transaction: each record is counted exactly once, however many workers
run (the watermark row is locked) and whatever crashes. Settlement never touches a rollup row,
so the hot path does not contend on them.

Which records are safe to read: on PostgreSQL a record's id is taken when it is inserted, not
when its transaction commits, so ids can commit out of order; reading past a gap could skip a
record that commits a moment later. Every transaction that inserts usage records first takes a
shared advisory lock (`ledger.settlement.USAGE_LOCK_KEY`). The worker takes the same lock
exclusively for an instant, in a transaction of its own, with a *try* (never queueing, so it
never holds up a settlement) and reads the highest id: every transaction that had taken an id
by then has ended, so no id at or below it can still appear. That id bounds what it rolls up.
A watermark that only needs a lock among the writers of usage records, not the database-wide
oldest transaction (`xmin`), is not held back by long transactions elsewhere on the server.
On SQLite writers are serialized, so ids commit in order and the highest id is the bound."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from faregate.db.schema import rollup_state, usage_records, usage_rollups
from faregate.ledger.settlement import USAGE_LOCK_KEY

STATE = "usage"
WIDTHS: dict[str, int] = {"1m": 60, "1h": 3600, "1d": 86400}
BATCH = 50_000
_SUMS = ("requests", "failed_requests", "input_tokens", "cached_tokens", "output_tokens",
         "cost_nano", "charged_nano", "writeoff_nano")


@dataclass(frozen=True, slots=True)
class Watermark:
    id: int  # every usage record with an id up to this one is rolled up
    records: int  # how many that is


def _epoch(dialect: str) -> sa.ColumnElement[int]:
    col = usage_records.c.settled_at
    if dialect == "sqlite":
        return sa.cast(sa.func.strftime("%s", col), sa.BigInteger)
    return sa.cast(sa.func.floor(sa.extract("epoch", col)), sa.BigInteger)


def _max_id(conn: sa.Connection) -> int:
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(usage_records.c.id), 0)))
               .scalar_one())


def try_safe_bound(conn: sa.Connection) -> int | None:
    """The highest usage record id below which nothing can still commit, or None when a
    settlement is writing right now (PostgreSQL; try again in a moment). Run it in a
    transaction of its own: the lock is held until that transaction ends."""
    if conn.dialect.name == "postgresql" and not conn.exec_driver_sql(
            f"SELECT pg_try_advisory_xact_lock({USAGE_LOCK_KEY})").scalar_one():
        return None
    return _max_id(conn)


def safe_bound(conn: sa.Connection, *, timeout_ms: int = 100) -> int | None:
    """Like try_safe_bound, but waits up to `timeout_ms` for the settlements in flight (new
    ones queue behind it meanwhile, so keep it short); None when they took longer."""
    if conn.dialect.name != "postgresql":
        return _max_id(conn)
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{int(timeout_ms)}ms'")
    try:
        with conn.begin_nested():
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({USAGE_LOCK_KEY})")
    except sa.exc.OperationalError:
        return None
    return _max_id(conn)


def _insert(dialect: str, table: sa.Table) -> Any:
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


def _lock_state(conn: sa.Connection) -> Watermark:
    query = sa.select(rollup_state).where(rollup_state.c.name == STATE)
    if conn.dialect.name != "sqlite":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:  # the first run; another worker may be inserting it too
        conn.execute(_insert(conn.dialect.name, rollup_state).values(
            name=STATE, last_id=0, records=0, updated_at=dt.datetime.now(dt.UTC))
            .on_conflict_do_nothing())
        row = conn.execute(query).first()
    assert row is not None
    return Watermark(int(row.last_id), int(row.records))


def watermark(conn: sa.Connection) -> Watermark:
    row = conn.execute(sa.select(rollup_state).where(rollup_state.c.name == STATE)).first()
    return Watermark(0, 0) if row is None else Watermark(int(row.last_id), int(row.records))


def _upto(end: Watermark) -> sa.ColumnElement[bool]:
    return usage_records.c.id <= end.id


def _batch_end(conn: sa.Connection, mark: Watermark, bound: int,
               batch: int) -> Watermark | None:
    r = usage_records.c
    ids = (sa.select(r.id).where(r.id > mark.id, r.id <= bound).order_by(r.id).limit(batch)
           .subquery())
    row = conn.execute(sa.select(sa.func.max(ids.c.id), sa.func.count())).one()
    return None if row[0] is None else Watermark(int(row[0]), int(row[1]))


@functools.cache
def _add_width_stmt(dialect: str, width: str, seconds: int) -> Any:
    """Sum the records with ids in (:lo, :hi] per bucket of one width and add them to the
    rollups, in one INSERT ... SELECT ... ON CONFLICT statement (no rows travel through
    Python). Built once per dialect and width: building it took longer than running it."""
    r = usage_records.c
    failed = sa.case((r.status == "ok", 0), else_=1)
    dims = (r.organization_id, (_epoch(dialect) // seconds * seconds),
            sa.func.coalesce(r.project_id, ""), sa.func.coalesce(r.api_key_id, ""), r.model,
            r.endpoint)
    sums = sa.select(
        sa.literal(width), *dims, sa.func.count(), sa.func.sum(failed),
        sa.func.sum(r.prompt_tokens), sa.func.sum(r.cached_tokens),
        sa.func.sum(r.completion_tokens), sa.func.sum(r.cost_nano), sa.func.sum(r.charged_nano),
        sa.func.sum(r.writeoff_nano),
    ).where(r.id > sa.bindparam("lo"), r.id <= sa.bindparam("hi")).group_by(*dims)
    stmt = _insert(dialect, usage_rollups).from_select(
        [c.name for c in usage_rollups.columns], sums)
    return stmt.on_conflict_do_update(
        index_elements=list(usage_rollups.primary_key.columns),
        set_={name: usage_rollups.c[name] + stmt.excluded[name] for name in _SUMS})


def roll_up(conn: sa.Connection, bound: int | None = None, batch: int = BATCH) -> int:
    """Add the next batch of usage records, up to id `bound` (from `try_safe_bound` or
    `safe_bound` in an earlier transaction), to the rollups; return how many. Without a bound
    it waits for the settlements in flight itself (for tools and tests: the wait holds up new
    settlements until this transaction ends)."""
    if bound is None:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({USAGE_LOCK_KEY})")
        bound = _max_id(conn)
    mark = _lock_state(conn)
    end = _batch_end(conn, mark, bound, batch)
    if end is None:
        return 0
    for width, seconds in WIDTHS.items():
        conn.execute(_add_width_stmt(conn.dialect.name, width, seconds),
                     {"lo": mark.id, "hi": end.id})
    conn.execute(rollup_state.update().where(rollup_state.c.name == STATE).values(
        last_id=end.id, records=mark.records + end.records,
        updated_at=dt.datetime.now(dt.UTC)))
    return end.records


def rollup_problems(conn: sa.Connection) -> list[str]:
    """Each organization's rollups, at every width, equal the sums of its usage records up to
    the watermark, to the unit (part of `faregate ledger verify`). On PostgreSQL the watermark
    row is share-locked for the rest of the caller's transaction: a roll-up committing between
    this check's statements would otherwise show as a difference that is not there."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(rollup_state.c.name).where(rollup_state.c.name == STATE)
                     .with_for_update(read=True))
    mark = watermark(conn)
    r = usage_records.c
    failed = sa.case((r.status == "ok", 0), else_=1)
    cols = (sa.func.count(), sa.func.sum(failed), sa.func.sum(r.prompt_tokens),
            sa.func.sum(r.cached_tokens), sa.func.sum(r.completion_tokens),
            sa.func.sum(r.cost_nano), sa.func.sum(r.charged_nano), sa.func.sum(r.writeoff_nano))
    query = sa.select(r.organization_id, *cols).where(_upto(mark)).group_by(
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
