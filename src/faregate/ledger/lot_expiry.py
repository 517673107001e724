"""The credit-lot worker's writes (see ledger/lots.py), one organization account per
transaction with the account row locked, so they are exact against settlement, credits,
refunds and a second worker: date new paid lots, allocate the new debits to the lots, then
expire the lots past their date — never more than the account has available."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from faregate.db.schema import accounts, credit_lot_cursors, credit_lots
from faregate.ledger.accounts import account_id, balance, lock_available
from faregate.ledger.lots import (
    EXPIRED,
    EXPIRY_KIND,
    Lot,
    add_months,
    allocate_pending,
    expiry_of,
    load_cursor,
    load_lots,
)
from faregate.ledger.transfers import post_transfer

ACTOR = "worker:credit-lots"


@dataclass(frozen=True, slots=True)
class Settled:
    allocated_nano: int  # consumption newly allocated to lots (not counting expiry)
    expired_nano: int
    lots_closed: int  # lots past their date, closed (with or without credit left to expire)


def accounts_to_settle(conn: sa.Connection, *, now: dt.datetime, paid_months: int) -> list[int]:
    """Organization accounts with debits not yet allocated, paid lots not yet dated, or lots
    past their date (`paid_months` 0: paid lots do not expire)."""
    cur, c = credit_lot_cursors, credit_lots.c
    pending = (sa.select(accounts.c.id)
               .select_from(accounts.outerjoin(cur, cur.c.account_id == accounts.c.id))
               .where(accounts.c.kind == "org_credit",
                      accounts.c.debits_nano > sa.func.coalesce(cur.c.allocated_nano, 0)))
    undated = sa.select(c.account_id).where(c.kind == "paid", c.term_months.is_(None))
    due = sa.select(c.account_id).where(c.expired_at.is_(None), c.expires_at <= now)
    if paid_months == 0:
        due = due.where(c.kind == "promotional")
    found: set[int] = set()
    for query in (pending, undated, due):
        found.update(int(x) for x in conn.execute(query).scalars())
    return sorted(found)


def settle_account(conn: sa.Connection, acct: int, *, now: dt.datetime,
                   paid_months: int) -> Settled:
    """Bring one account's lots up to date as of `now` (see the module docstring)."""
    lock_available(conn, acct)
    b = balance(conn, acct)
    lots = load_lots(conn, acct)
    before = {lot.id: _state(lot) for lot in lots}
    for lot in lots:
        if lot.kind == "paid" and lot.term_months is None:
            lot.term_months = paid_months
            lot.expires_at = add_months(lot.created_at, paid_months) if paid_months else None
    cursor = load_cursor(conn, acct)
    pending = allocate_pending(conn, acct, lots, cursor, b.debits_nano)
    allocated = pending.allocated_nano
    newly_allocated = allocated - cursor.allocated_nano
    available = b.available_nano
    expired = closed = 0
    due = [(when, lot) for lot in lots
           if (when := expiry_of(lot, paid_months)) is not None and when <= now]
    for when, lot in sorted(due, key=lambda x: (x[0], x[1].id)):
        take = min(lot.remaining_nano, max(0, available))
        if take:
            post_transfer(conn, debit_account_id=acct, credit_account_id=account_id(conn, EXPIRED),
                          amount_nano=take, kind=EXPIRY_KIND, actor=ACTOR,
                          reason=f"{lot.kind} credit of {lot.created_at:%Y-%m-%d} expired on "
                                 f"{when:%Y-%m-%d}",
                          idempotency_key=f"expire:{lot.id}:{lot.expired_nano}")
            lot.remaining_nano -= take
            lot.expired_nano += take
            available -= take
            allocated += take
            expired += take
        if lot.remaining_nano == 0:  # else leases hold the rest: it expires on a later run
            lot.expired_at = now
            closed += 1
    for lot in lots:
        if _state(lot) != before[lot.id]:
            conn.execute(credit_lots.update().where(credit_lots.c.id == lot.id).values(
                remaining_nano=lot.remaining_nano, expired_nano=lot.expired_nano,
                expired_at=lot.expired_at, term_months=lot.term_months,
                expires_at=lot.expires_at))
    values = {"allocated_nano": allocated, "refund_transfer_id": pending.refund_transfer_id,
              "updated_at": now}
    if cursor.exists:
        conn.execute(credit_lot_cursors.update()
                     .where(credit_lot_cursors.c.account_id == acct).values(**values))
    else:
        conn.execute(credit_lot_cursors.insert().values(account_id=acct, **values))
    return Settled(newly_allocated, expired, closed)


def _state(lot: Lot) -> tuple[object, ...]:
    return (lot.remaining_nano, lot.expired_nano, lot.expired_at, lot.term_months,
            lot.expires_at)
