"""The jobs, and the loop that runs them. Each job is safe to run in any number of processes at
once (every change it makes is a conditional update, so no job is done twice); on top of that,
the loop claims a job before running it (worker/schedule.py), so across every process a job
runs once per interval, one process at a time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from faregate.db.runner import Database
from faregate.identity.email_tokens import prune_email_tokens
from faregate.identity.sessions import prune_sessions
from faregate.kit.metrics import JOB_RUNS, JOB_SECONDS
from faregate.ledger.leases import void_lapsed
from faregate.operators.sessions import prune_sessions as prune_operator_sessions
from faregate.phone.verification import prune_codes
from faregate.throttle import limiter as throttle
from faregate.worker.schedule import LEASE_S, claim, finish, renew

log = logging.getLogger("faregate.worker")


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    interval_s: float
    run: Callable[[Database], Awaitable[object]]


async def sweep_lapsed_leases(db: Database) -> int:
    """Void leases whose process stopped heartbeating, returning what they held."""
    voided = await db.run(void_lapsed)
    if voided:
        log.warning("voided %d lapsed lease(s)", voided)
    return voided


async def prune_attempts(db: Database) -> int:
    """Forget throttle attempts and unverified SMS codes older than any window that counts
    them, and sessions (users' and operators') and emailed links long ended."""
    return (await db.run(throttle.prune) + await db.run(prune_codes)
            + await db.run(prune_sessions) + await db.run(prune_email_tokens)
            + await db.run(prune_operator_sessions))


JOBS = [Job("sweep-lapsed-leases", 5.0, sweep_lapsed_leases),
        Job("prune-attempts", 600.0, prune_attempts)]


def holder_name() -> str:
    """Names this process in job_runs.holder (host, pid and a random tag)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(3)}"


async def run_claimed(db: Database, job: Job, holder: str, lease_s: float = LEASE_S) -> bool:
    """Run `job` once if this process wins its claim; False when it was not its turn."""
    if not await db.run(claim, job.name, holder, job.interval_s, lease_s):
        return False

    async def keep_lease() -> None:
        while True:
            await asyncio.sleep(lease_s / 3)
            await db.run(renew, job.name, holder, lease_s)

    keeper = asyncio.create_task(keep_lease())
    error: str | None = None
    began, outcome = time.perf_counter(), ""
    try:
        await job.run(db)
        outcome = "ok"
    except Exception as exc:
        error, outcome = f"{type(exc).__name__}: {exc}", "failed"
        raise
    finally:
        if outcome:  # not when cancelled (a shutdown)
            JOB_SECONDS.labels(job.name).observe(time.perf_counter() - began)
            JOB_RUNS.labels(job.name, outcome).inc()
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await keeper
        with contextlib.suppress(Exception):  # else the lease lapses by itself
            await db.run(finish, job.name, holder, error)
    return True


async def run_jobs(db: Database, jobs: list[Job] = JOBS) -> None:
    """Run every job on its interval until cancelled; a failing job is logged and retried."""
    holder = holder_name()

    async def loop(job: Job) -> None:
        while True:
            try:
                await run_claimed(db, job, holder)
            except Exception:
                log.exception("job %s failed", job.name)
            await asyncio.sleep(job.interval_s)

    await asyncio.gather(*(loop(job) for job in jobs))
