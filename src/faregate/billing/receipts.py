"""Receipts: one numbered receipt per successful payment (date, amount, payment method,
balance after), made in the same transaction as the credit."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from faregate.billing.amounts import cents_to_nano
from faregate.db.schema import payment_methods, receipts
from faregate.errors import NotFound
from faregate.ledger.accounts import balance, org_account_id
from faregate.payments.processor import Charge


@dataclass(frozen=True, slots=True)
class Receipt:
    number: int
    organization_id: str
    processor: str
    payment_id: str
    amount_nano: int
    brand: str | None
    last4: str | None
    balance_after_nano: int
    created_at: dt.datetime


def _receipt(r: sa.Row[tuple[object, ...]]) -> Receipt:
    m = r._mapping
    return Receipt(int(m["number"]), m["organization_id"], m["processor"], m["payment_id"],
                   int(m["amount_nano"]), m["brand"], m["last4"], int(m["balance_after_nano"]),
                   m["created_at"])


def issue_receipt(conn: sa.Connection, *, processor: str, charge: Charge,
                  organization_id: str) -> Receipt:
    """The payment's receipt, made once (after its credit, in the same transaction)."""
    assert charge.payment_id is not None
    found = conn.execute(sa.select(receipts).where(receipts.c.payment_id == charge.payment_id))
    row = found.first()
    if row is not None:
        return _receipt(row)
    card = conn.execute(sa.select(payment_methods.c.brand, payment_methods.c.last4).where(
        payment_methods.c.method_id == charge.method_id)).first() if charge.method_id else None
    after = balance(conn, org_account_id(conn, organization_id)).balance_nano
    try:
        with conn.begin_nested():
            conn.execute(receipts.insert().values(
                organization_id=organization_id, processor=processor,
                payment_id=charge.payment_id, amount_nano=cents_to_nano(charge.amount_minor),
                brand=card.brand if card else None, last4=card.last4 if card else None,
                balance_after_nano=after, created_at=dt.datetime.now(dt.UTC)))
    except IntegrityError:  # made concurrently by the other path (response or webhook)
        pass
    return _receipt(conn.execute(sa.select(receipts).where(
        receipts.c.payment_id == charge.payment_id)).one())


def list_receipts(conn: sa.Connection, organization_id: str, *,
                  limit: int = 100) -> list[Receipt]:
    rows = conn.execute(sa.select(receipts).where(receipts.c.organization_id == organization_id)
                        .order_by(receipts.c.number.desc()).limit(limit))
    return [_receipt(r) for r in rows]


def get_receipt(conn: sa.Connection, organization_id: str, number: int) -> Receipt:
    row = conn.execute(sa.select(receipts).where(
        receipts.c.organization_id == organization_id, receipts.c.number == number)).first()
    if row is None:
        raise NotFound(f"No receipt {number}.")
    return _receipt(row)
