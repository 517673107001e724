"""Spend-limit jobs: finish moving keys' current-period limit accounts to their limits.

A lowered limit gives back at once only what no request holds; servers give back their leases
of it when they see the change (within 2 s) and move the account then. This job is the
backstop for what comes free later — the unspent part of requests that were in flight, the
idle lease of a server that saw no request of the key, a dead server's lapsed lease — and for
an account a server made from a key cache a moment old. Checking a candidate sums its limit
transfers, so it runs every few seconds, not on every settlement."""

from __future__ import annotations

import logging

from faregate.api_keys.spend_limits import bring_to_limit, limits_off_target
from faregate.db.runner import Database
from faregate.worker.jobs import Job

log = logging.getLogger("faregate.worker")


async def settle_key_limits(db: Database) -> int:
    """One short transaction per key, so no lease or settlement waits long on a lock."""
    moved = 0
    for key_id in await db.run(limits_off_target):
        if await db.run(bring_to_limit, key_id):
            moved += 1
    if moved:
        log.info("moved %d key spend limit account(s) to their limits", moved)
    return moved


LIMIT_JOBS = [Job("key-spend-limits", 5.0, settle_key_limits)]
