"""Credit from payments: exactly once per processor payment, however the success arrives."""

from __future__ import annotations

import sqlalchemy as sa

from faregate.billing.amounts import CURRENCY, cents_to_nano
from faregate.db.schema import billing_customers
from faregate.ledger.accounts import account_id, lock_available, org_account_id
from faregate.ledger.lots import open_lot
from faregate.ledger.transfers import Transfer, post_transfer
from faregate.payments.processor import Charge

CLEARING = {"sandbox": "platform:sandbox_clearing", "stripe": "platform:stripe_clearing"}


def organization_of_customer(conn: sa.Connection, processor: str,
                             customer_id: str | None) -> str | None:
    if customer_id is None:
        return None
    found = conn.execute(sa.select(billing_customers.c.organization_id).where(
        billing_customers.c.processor == processor,
        billing_customers.c.customer_id == customer_id)).scalar()
    return str(found) if found is not None else None


def credit_payment(conn: sa.Connection, *, processor: str, charge: Charge,
                   organization_id: str) -> Transfer:
    """Move the paid amount from the processor's clearing account to the organization. Keyed on
    the processor's payment id: a second call (the webhook after the response, a redelivery)
    returns the first transfer. The amount and currency are the processor's, never ours."""
    if charge.status != "succeeded" or charge.payment_id is None:
        raise ValueError("only a succeeded payment is credited")
    if charge.currency.lower() != CURRENCY:
        raise ValueError(f"unexpected currency {charge.currency!r}")
    acct = org_account_id(conn, organization_id)
    # Serialise credits of one organization: a concurrent delivery of the same payment waits
    # here, then finds the transfer already made.
    lock_available(conn, acct)
    transfer = post_transfer(
        conn, debit_account_id=account_id(conn, CLEARING[processor]), credit_account_id=acct,
        amount_nano=cents_to_nano(charge.amount_minor), kind="topup",
        actor=f"{processor}:payment", reason=f"payment {charge.payment_id}",
        idempotency_key=f"payment:{processor}:{charge.payment_id}")
    open_lot(conn, transfer, kind="paid")  # bought credit: expires (ledger/lots.py)
    return transfer
