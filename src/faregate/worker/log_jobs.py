"""Request log retention: delete logs older than FAREGATE_REQUEST_LOG_RETENTION_DAYS, a batch
per transaction so no writer waits long on a lock."""

from __future__ import annotations

import datetime as dt
import logging

from faregate.config import Settings
from faregate.db.runner import Database
from faregate.usage.request_logs import PRUNE_BATCH, prune_logs
from faregate.worker.jobs import Job

log = logging.getLogger("faregate.worker")

PRUNE_INTERVAL_S = 60.0


async def prune_request_logs(db: Database, *, retention_days: int,
                             now: dt.datetime | None = None, batch: int = PRUNE_BATCH) -> int:
    """Delete every log past the retention; returns how many."""
    before = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=retention_days)
    deleted = 0
    while True:
        done = await db.run(lambda conn: prune_logs(conn, before=before, limit=batch))
        deleted += done
        if done < batch:
            break
    if deleted:
        log.info("deleted %d request log(s) older than %d days", deleted, retention_days)
    return deleted


def log_jobs(settings: Settings) -> list[Job]:
    days = settings.request_log_retention_days

    async def request_log_retention(db: Database) -> int:
        return await prune_request_logs(db, retention_days=days)

    return [Job("request-log-retention", PRUNE_INTERVAL_S, request_log_retention)]
