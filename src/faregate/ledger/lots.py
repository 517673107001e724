"""Credit lots: each credit that lands on an organization's account is a lot, used in order
(promotional first, soonest expiry first; then paid, oldest first) and, past its date, expired.

Settlement never touches lots: the worker allocates the account's debits to its lots after the
fact (ledger/lot_expiry.py), from a cursor of how much it has allocated so far. This module
holds the records and the allocation rules; the overview reads a projection of them.

Invariants (`faregate ledger verify`): the lots of an account add up to its credits; what they
have used (consumed + expired) is the cursor, which never passes the account's debits; what
they expired is what the account's `credit_expiry` transfers took."""

from __future__ import annotations

import calendar
import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import sqlalchemy as sa

from faregate.db.schema import accounts, credit_lot_cursors, credit_lots, transfers
from faregate.ledger.accounts import account_id

if TYPE_CHECKING:
    from faregate.ledger.transfers import Transfer

EXPIRED = "platform:expired_credit"
EXPIRY_KIND = "credit_expiry"
LotKind = Literal["paid", "promotional"]
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def add_months(t: dt.datetime, months: int) -> dt.datetime:
    """The same day `months` later (the month's last day when it is shorter)."""
    year, month0 = divmod(t.month - 1 + months, 12)
    year += t.year
    day = min(t.day, calendar.monthrange(year, month0 + 1)[1])
    return t.replace(year=year, month=month0 + 1, day=day)


def open_lot(conn: sa.Connection, transfer: Transfer, *, kind: LotKind,
             expires_at: dt.datetime | None = None) -> int | None:
    """Record the lot of the credit `transfer` brought, in the transfer's transaction (whose
    credit has locked the account row). Paid lots are dated by the worker (the expiry period is
    its setting). Idempotent: a replayed transfer keeps its first lot, and a transfer from
    before lots existed (its credit is in the migration's lot) gets none."""
    found = conn.execute(sa.select(credit_lots.c.id).where(
        credit_lots.c.source_transfer_id == transfer.id)).scalar()
    if found is not None:
        return int(found)
    acct = transfer.credit_account_id
    in_lots = (sa.select(sa.func.coalesce(sa.func.sum(credit_lots.c.amount_nano), 0))
               .where(credit_lots.c.account_id == acct).scalar_subquery())
    row = conn.execute(sa.select(accounts.c.organization_id,
                                 (accounts.c.credits_nano - in_lots).label("uncovered"))
                       .where(accounts.c.id == acct)).one()
    if row.organization_id is None or int(row.uncovered) < transfer.amount_nano:
        return None
    new_id = conn.execute(credit_lots.insert().values(
        organization_id=row.organization_id, account_id=acct, source_transfer_id=transfer.id,
        kind=kind, amount_nano=transfer.amount_nano, remaining_nano=transfer.amount_nano,
        expired_nano=0, created_at=transfer.created_at,
        expires_at=expires_at if kind == "promotional" else None,
    ).returning(credit_lots.c.id)).scalar_one()
    return int(new_id)


@dataclass(slots=True)
class Lot:
    id: int
    kind: str
    amount_nano: int
    remaining_nano: int
    expired_nano: int
    created_at: dt.datetime
    expires_at: dt.datetime | None
    term_months: int | None
    expired_at: dt.datetime | None
    source_key: str | None  # the idempotency key of the transfer that brought it


def load_lots(conn: sa.Connection, acct: int) -> list[Lot]:
    """The account's lots not closed yet that can still change: with credit left, or with a
    date to reach, or not yet dated."""
    c = credit_lots.c
    rows = conn.execute(
        sa.select(credit_lots, transfers.c.idempotency_key)
        .select_from(credit_lots.outerjoin(transfers, transfers.c.id == c.source_transfer_id))
        .where(c.account_id == acct, c.expired_at.is_(None),
               sa.or_(c.remaining_nano > 0, c.expires_at.is_not(None),
                      sa.and_(c.kind == "paid", c.term_months.is_(None))))
        .order_by(c.id)).all()
    return [Lot(int(r.id), r.kind, int(r.amount_nano), int(r.remaining_nano),
                int(r.expired_nano), r.created_at, r.expires_at,
                None if r.term_months is None else int(r.term_months), r.expired_at,
                r.idempotency_key) for r in rows]


def expiry_of(lot: Lot, paid_months: int) -> dt.datetime | None:
    """When the lot expires under the current setting (`paid_months` 0: paid credit does not
    expire at all); a paid lot not yet dated gets the date the worker will give it."""
    if lot.kind == "promotional":
        return lot.expires_at
    if paid_months == 0:
        return None
    if lot.term_months is None:
        return add_months(lot.created_at, paid_months)
    return lot.expires_at


def _use_key(lot: Lot) -> tuple[int, bool, dt.datetime, int]:
    if lot.kind == "promotional":
        return (0, lot.expires_at is None, lot.expires_at or _EPOCH, lot.id)
    return (1, False, _EPOCH, lot.id)


def consume(lots: list[Lot], amount: int) -> int:
    """Take `amount` from the lots in the order of use; returns what they could not cover."""
    for lot in sorted(lots, key=_use_key):
        if amount <= 0:
            break
        take = min(lot.remaining_nano, amount)
        lot.remaining_nano -= take
        amount -= take
    return amount


def _refunded_payment_key(key: str | None) -> str | None:
    # billing/refunds.py books a refund's take-back as refund:{processor}:{payment}:{n}:balance;
    # billing/credit.py credited that payment as payment:{processor}:{payment}.
    parts = (key or "").split(":")
    if len(parts) < 5 or parts[0] != "refund" or parts[-1] != "balance":
        return None
    return "payment:" + ":".join(parts[1:-2])


@dataclass(frozen=True, slots=True)
class Cursor:
    allocated_nano: int
    refund_transfer_id: int
    exists: bool


def load_cursor(conn: sa.Connection, acct: int) -> Cursor:
    row = conn.execute(sa.select(credit_lot_cursors).where(
        credit_lot_cursors.c.account_id == acct)).first()
    if row is None:
        return Cursor(0, 0, exists=False)
    return Cursor(int(row.allocated_nano), int(row.refund_transfer_id), exists=True)


def allocate_pending(conn: sa.Connection, acct: int, lots: list[Lot], cursor: Cursor,
                     debits_nano: int) -> Cursor:
    """Allocate the account's debits past the cursor to `lots` (in memory): a refund's
    take-back to the refunded payment's own lot first, the rest in the order of use. Returns
    the new cursor (short of `debits_nano` only if the lots cannot cover it)."""
    allocated, last_refund = cursor.allocated_nano, cursor.refund_transfer_id
    by_source = {lot.source_key: lot for lot in lots if lot.source_key}
    for refund_id, amount, key in conn.execute(
            sa.select(transfers.c.id, transfers.c.amount_nano, transfers.c.idempotency_key)
            .where(transfers.c.debit_account_id == acct, transfers.c.kind == "refund",
                   transfers.c.id > last_refund).order_by(transfers.c.id)).all():
        last_refund = int(refund_id)
        source = _refunded_payment_key(key)
        lot = by_source.get(source) if source else None
        if lot is not None:
            take = min(lot.remaining_nano, int(amount))
            lot.remaining_nano -= take
            allocated += take
    need = max(0, debits_nano - allocated)
    short = consume(lots, need)
    return Cursor(allocated + need - short, last_refund, cursor.exists)


@dataclass(frozen=True, slots=True)
class Expiring:
    lot_id: int
    kind: str
    remaining_nano: int
    expires_at: dt.datetime


def upcoming_expirations(conn: sa.Connection, acct: int, *, paid_months: int,
                         limit: int = 5) -> list[Expiring]:
    """The next lots to expire with what they still hold, counting the consumption the worker
    has not allocated yet (read only)."""
    lots = load_lots(conn, acct)
    debits = conn.execute(sa.select(accounts.c.debits_nano)
                          .where(accounts.c.id == acct)).scalar_one()
    allocate_pending(conn, acct, lots, load_cursor(conn, acct), int(debits))
    dated = [(when, lot) for lot in lots
             if lot.remaining_nano > 0 and (when := expiry_of(lot, paid_months)) is not None]
    dated.sort(key=lambda x: (x[0], x[1].id))
    return [Expiring(lot.id, lot.kind, lot.remaining_nano, when) for when, lot in dated[:limit]]


def lot_problems(conn: sa.Connection) -> list[str]:
    """For `faregate ledger verify`: every credit of an organization is a lot, the lots' use
    matches the cursor and their expiry the expiry transfers."""
    c = credit_lots.c
    sums = {int(r.account_id): (int(r.amount), int(r.used), int(r.expired))
            for r in conn.execute(
                sa.select(c.account_id, sa.func.sum(c.amount_nano).label("amount"),
                          sa.func.sum(c.amount_nano - c.remaining_nano).label("used"),
                          sa.func.sum(c.expired_nano).label("expired"))
                .group_by(c.account_id)).all()}
    cursors = {int(r[0]): int(r[1]) for r in conn.execute(
        sa.select(credit_lot_cursors.c.account_id, credit_lot_cursors.c.allocated_nano)).all()}
    expiries: dict[int, int] = defaultdict(int)
    for acct, amount in conn.execute(
            sa.select(transfers.c.debit_account_id, sa.func.sum(transfers.c.amount_nano))
            .where(transfers.c.kind == EXPIRY_KIND).group_by(transfers.c.debit_account_id)):
        expiries[int(acct)] = int(amount)
    problems: list[str] = []
    for row in conn.execute(sa.select(accounts).where(accounts.c.kind == "org_credit")).all():
        amount, used, expired = sums.pop(row.id, (0, 0, 0))
        allocated = cursors.get(row.id, 0)
        if amount != int(row.credits_nano):
            problems.append(f"account {row.code}: credit lots {amount} != credits "
                            f"{row.credits_nano} (a credit without its lot?)")
        if used != allocated:
            problems.append(f"account {row.code}: lots used {used} != allocated {allocated}")
        if allocated > int(row.debits_nano):
            problems.append(f"account {row.code}: allocated {allocated} > debits "
                            f"{row.debits_nano}")
        if expired != expiries.get(row.id, 0):
            problems.append(f"account {row.code}: lots expired {expired} != expiry transfers "
                            f"{expiries.get(row.id, 0)}")
    if sums:
        problems.append(f"{len(sums)} account(s) with credit lots are not organizations'")
    mismatched = conn.execute(
        sa.select(sa.func.count()).select_from(
            credit_lots.join(transfers, transfers.c.id == c.source_transfer_id))
        .where(sa.or_(transfers.c.credit_account_id != c.account_id,
                      transfers.c.amount_nano != c.amount_nano))).scalar_one()
    if mismatched:
        problems.append(f"{mismatched} credit lot(s) differ from the transfer that brought them")
    taken = conn.execute(sa.select(accounts.c.credits_nano)
                         .where(accounts.c.id == account_id(conn, EXPIRED))).scalar_one()
    total = int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(c.expired_nano), 0)))
                .scalar_one())
    if int(taken) != total:
        problems.append(f"expired-credit account credits {taken} != lots expired {total}")
    return problems
