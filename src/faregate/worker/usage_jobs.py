"""Usage jobs: keep the rollups within about a second of the settled usage records."""

from __future__ import annotations

from faregate.db.runner import Database
from faregate.usage.rollup import BATCH, roll_up
from faregate.worker.jobs import Job


async def roll_up_usage(db: Database) -> int:
    """Roll up every record settled so far, a batch per transaction."""
    total = 0
    while True:
        done = await db.run(roll_up)
        total += done
        if done < BATCH:
            return total


USAGE_JOBS = [Job("usage-rollup", 0.5, roll_up_usage)]
