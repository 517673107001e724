"""Usage jobs: keep the rollups within about a second of the settled usage records."""

from __future__ import annotations

import asyncio
import logging

from faregate.db.runner import Database
from faregate.usage.rollup import BATCH, roll_up, safe_bound, try_safe_bound
from faregate.worker.jobs import Job

log = logging.getLogger("faregate.worker")

_TRIES = 20


async def _bound(db: Database) -> int | None:
    """The id up to which records are final: a few non-blocking tries between settlements,
    then one short wait."""
    for _ in range(_TRIES):
        bound = await db.run(try_safe_bound)
        if bound is not None:
            return bound
        await asyncio.sleep(0.005)
    return await db.run(safe_bound)


async def roll_up_usage(db: Database) -> int:
    """Roll up every record settled so far, a batch per transaction."""
    bound = await _bound(db)
    if bound is None:
        log.info("usage rollup: settlements kept the writers' lock busy; next round")
        return 0
    total = 0
    while True:
        done = await db.run(roll_up, bound)
        total += done
        if done < BATCH:
            return total


USAGE_JOBS = [Job("usage-rollup", 0.5, roll_up_usage)]
