"""Credit lots: allocate what organizations spent to their credit lots, and expire the lots
past their date (ledger/lot_expiry.py), one account per transaction."""

from __future__ import annotations

import datetime as dt
import logging

from faregate.config import Settings
from faregate.db.runner import Database
from faregate.ledger.lot_expiry import accounts_to_settle, settle_account
from faregate.worker.jobs import Job

log = logging.getLogger("faregate.worker")


async def settle_credit_lots(db: Database, *, paid_months: int,
                             now: dt.datetime | None = None) -> int:
    """Settle every account that needs it; returns the nano-USD expired."""
    at = now or dt.datetime.now(dt.UTC)
    todo = await db.run(lambda conn: accounts_to_settle(conn, now=at, paid_months=paid_months))
    expired = 0
    for acct in todo:
        done = await db.run(lambda conn, a=acct: settle_account(conn, a, now=at,
                                                                 paid_months=paid_months))
        if done.expired_nano:
            log.info("credit of account %d expired: %d nano-USD", acct, done.expired_nano)
        expired += done.expired_nano
    return expired


def credit_jobs(settings: Settings) -> list[Job]:
    months = settings.credit_expiry_months

    async def credit_lots(db: Database) -> int:
        return await settle_credit_lots(db, paid_months=months)

    return [Job("credit-lots", 60.0, credit_lots)]
