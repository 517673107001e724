"""Which process runs a background job, and when: a lease per job in `job_runs`.

Every server (with background jobs on) and every `faregate worker` replica runs the same job
loops. Before a run, a process claims the job with one conditional UPDATE: it wins only when
the job is due (`next_run_at` has passed) and nobody holds an unexpired lease. So across the
whole fleet a job runs once per interval and never twice at the same time, and the database
sees one run's queries instead of one per replica. The winner renews its lease while the job
runs; if it dies, the lease lapses after LEASE_S and another process takes the job over.

The jobs stay safe to run concurrently on their own (conditional updates, idempotency keys):
the lease saves work and duplicate e-mails in the common case; it is not what keeps money
exact. Times are each process's UTC clock (keep hosts on NTP: a skew longer than the lease
could let two runs overlap)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from faregate.db.schema import job_runs

LEASE_S = 60.0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _insert(conn: sa.Connection) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(job_runs)


def claim(conn: sa.Connection, name: str, holder: str, interval_s: float,
          lease_s: float = LEASE_S, now: dt.datetime | None = None) -> bool:
    """Take the job `name` for one run if it is due and free; schedules the next run."""
    now = now or _now()
    conn.execute(_insert(conn).values(name=name, next_run_at=now, runs=0)
                 .on_conflict_do_nothing())
    won = conn.execute(
        sa.update(job_runs)
        .where(job_runs.c.name == name, job_runs.c.next_run_at <= now,
               sa.or_(job_runs.c.lease_until.is_(None), job_runs.c.lease_until <= now))
        .values(holder=holder, lease_until=now + dt.timedelta(seconds=lease_s),
                next_run_at=now + dt.timedelta(seconds=interval_s), last_started_at=now,
                runs=job_runs.c.runs + 1))
    return won.rowcount == 1


def renew(conn: sa.Connection, name: str, holder: str, lease_s: float = LEASE_S) -> bool:
    """Extend a running job's lease; False if this process no longer holds it."""
    done = conn.execute(
        sa.update(job_runs).where(job_runs.c.name == name, job_runs.c.holder == holder,
                                  job_runs.c.lease_until.is_not(None))
        .values(lease_until=_now() + dt.timedelta(seconds=lease_s)))
    return done.rowcount == 1


def finish(conn: sa.Connection, name: str, holder: str, error: str | None = None) -> None:
    """Give the lease back (the next run still waits for `next_run_at`)."""
    conn.execute(
        sa.update(job_runs).where(job_runs.c.name == name, job_runs.c.holder == holder)
        .values(lease_until=None, last_finished_at=_now(),
                last_error=error[:300] if error else None))
