"""Job claims (worker/schedule.py): a job runs once per interval across processes, never twice
at the same time; a dead holder's lease lapses and another process takes over."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
from sqlalchemy.engine import Engine

from faregate.db.runner import Database
from faregate.db.schema import job_runs
from faregate.worker.jobs import Job, run_claimed
from faregate.worker.schedule import claim, finish, renew

T0 = dt.datetime(2026, 11, 28, 8, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def test_one_claim_per_interval_and_lease(engine: Engine) -> None:
    with engine.begin() as conn:
        assert claim(conn, "j", "a", 10, lease_s=60, now=at(0))
        assert not claim(conn, "j", "b", 10, lease_s=60, now=at(0))  # held and not due
        assert not claim(conn, "j", "b", 10, lease_s=60, now=at(11))  # due, but still held
        finish(conn, "j", "a")
        assert not claim(conn, "j", "b", 10, lease_s=60, now=at(5))  # free, not due yet
        assert claim(conn, "j", "b", 10, lease_s=60, now=at(10))
        assert not renew(conn, "j", "a")  # a no longer holds it
        assert renew(conn, "j", "b")
        row = conn.execute(sa.select(job_runs).where(job_runs.c.name == "j")).one()
        assert (row.holder, row.runs, row.next_run_at) == ("b", 2, at(20))


def test_a_dead_holders_lease_lapses(engine: Engine) -> None:
    with engine.begin() as conn:
        assert claim(conn, "j", "dead", 5, lease_s=30, now=at(0))  # and never finishes
        assert not claim(conn, "j", "b", 5, lease_s=30, now=at(29))
        assert claim(conn, "j", "b", 5, lease_s=30, now=at(30))


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_concurrent_claims_have_one_winner(engine: Engine) -> None:
    """8 threads, each its own connection, claim the same due job at once: one wins."""
    for round_ in range(5):
        barrier = threading.Barrier(8)
        wins: list[str] = []

        def contender(i: int, r: int = round_, barrier: threading.Barrier = barrier,
                      wins: list[str] = wins) -> None:
            barrier.wait()
            with engine.begin() as conn:
                if claim(conn, "hot", f"p{i}", 10, lease_s=60, now=at(20 * r)):
                    wins.append(f"p{i}")

        threads = [threading.Thread(target=contender, args=(i,)) for i in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert len(wins) == 1, (round_, wins)
        with engine.begin() as conn:
            finish(conn, "hot", wins[0])


def _runs(job: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("faregate_job_runs_total",
                                     {"job": job, "outcome": outcome}) or 0.0


def test_run_claimed_runs_once_and_records_errors(db: Database) -> None:
    calls: list[str] = []
    before = _runs("flaky", "failed"), _runs("flaky", "ok")

    async def work(_: Database) -> None:
        calls.append("ran")
        raise RuntimeError("boom")

    async def main() -> list[bool]:
        job = Job("flaky", 3600.0, work)
        out = []
        for holder in ("a", "b"):
            try:
                out.append(await run_claimed(db, job, holder))
            except RuntimeError:
                out.append(True)
        return out

    assert asyncio.run(main()) == [True, False]  # b: not due for an hour
    assert calls == ["ran"]
    with db.engine.begin() as conn:
        row = conn.execute(sa.select(job_runs).where(job_runs.c.name == "flaky")).one()
    assert row.lease_until is None and row.last_error == "RuntimeError: boom"
    # Counted once, as failed (b's turn did not run it).
    assert (_runs("flaky", "failed") - before[0], _runs("flaky", "ok") - before[1]) == (1, 0)
