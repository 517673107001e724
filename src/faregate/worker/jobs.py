"""The jobs. Each is safe to run in any number of processes at once: every change it makes is a
conditional update, so no job is done twice."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from faregate.db.runner import Database
from faregate.identity.email_tokens import prune_email_tokens
from faregate.identity.sessions import prune_sessions
from faregate.ledger.leases import void_lapsed
from faregate.operators.sessions import prune_sessions as prune_operator_sessions
from faregate.phone.verification import prune_codes
from faregate.throttle import limiter as throttle

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


async def run_jobs(db: Database, jobs: list[Job] = JOBS) -> None:
    """Run every job on its interval until cancelled; a failing job is logged and retried."""
    async def loop(job: Job) -> None:
        while True:
            try:
                await job.run(db)
            except Exception:
                log.exception("job %s failed", job.name)
            await asyncio.sleep(job.interval_s)

    await asyncio.gather(*(loop(job) for job in jobs))
