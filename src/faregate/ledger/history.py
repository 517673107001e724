"""An account's transfers, newest first: the credit history users and operators read."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from faregate.db.schema import transfers


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    created_at: dt.datetime
    kind: str
    amount_nano: int  # positive: credited to the account; negative: debited
    reason: str | None
    actor: str


def history(conn: sa.Connection, acct_id: int, *, limit: int = 50,
            before_id: int | None = None) -> list[Entry]:
    q = (sa.select(transfers).where(sa.or_(transfers.c.debit_account_id == acct_id,
                                           transfers.c.credit_account_id == acct_id))
         .order_by(transfers.c.id.desc()).limit(min(limit, 500)))
    if before_id is not None:
        q = q.where(transfers.c.id < before_id)
    return [Entry(int(r.id), r.created_at, r.kind,
                  int(r.amount_nano) if r.credit_account_id == acct_id else -int(r.amount_nano),
                  r.reason, r.actor) for r in conn.execute(q)]
