"""Usage-tier job: raise the organizations that reached a tier by growing older.

Payments raise the tier at once (billing/settle.py); the age thresholds are met by time alone,
so an hourly pass catches them. It only raises (a conditional update), so any number of
processes may run it."""

from __future__ import annotations

import logging

from faregate.db.runner import Database
from faregate.tiers.service import raise_earned_tiers
from faregate.worker.jobs import Job

log = logging.getLogger("faregate.worker")


async def raise_aged_tiers(db: Database) -> int:
    raised = await db.run(raise_earned_tiers)
    if raised:
        log.info("raised the usage tier of %d organization(s)", raised)
    return raised


TIER_JOBS = [Job("usage-tiers", 3600.0, raise_aged_tiers)]
