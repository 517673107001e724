"""Refunds and disputes: money leaves the organization's balance back to the processor's
clearing account. Credit already spent cannot be taken back from the balance (it never goes
negative): that shortfall is booked to `platform:receivables` as what the organization owes,
and billing stays suspended until a later payment has settled it."""

from __future__ import annotations

import sqlalchemy as sa

from faregate.audit import trail
from faregate.billing import state
from faregate.billing.amounts import cents_to_nano, nano_to_cents
from faregate.billing.credit import CLEARING
from faregate.db.runner import Database
from faregate.db.schema import billing_states, receipts, transfers
from faregate.errors import NotFound, Refused
from faregate.kit.money import nano_to_usd
from faregate.ledger.accounts import account_id, lock_available, org_account_id
from faregate.ledger.transfers import post_transfer
from faregate.payments.processor import PaymentProcessor

RECEIVABLES = "platform:receivables"


def _booked(conn: sa.Connection, prefix: str) -> int:
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(transfers.c.amount_nano), 0))
                            .where(transfers.c.idempotency_key.like(f"{prefix}%"))).scalar_one())


def take_back(conn: sa.Connection, *, processor: str, organization_id: str, reference: str,
              total_minor: int, kind: str, actor: str) -> int:
    """Bring what was taken back for `reference` (a payment's refunds, or a dispute) up to
    `total_minor`. Idempotent: replaying an event or a lower total books nothing. Returns the
    nano-USD newly owed (not covered by the balance)."""
    prefix = f"{kind}:{processor}:{reference}:"
    already = _booked(conn, prefix)
    delta = cents_to_nano(total_minor) - already
    if delta <= 0:
        return 0
    acct = org_account_id(conn, organization_id)
    take = min(delta, max(0, lock_available(conn, acct)))
    clearing = account_id(conn, CLEARING[processor])
    if take:
        post_transfer(conn, debit_account_id=acct, credit_account_id=clearing, amount_nano=take,
                      kind=kind, actor=actor, reason=f"{kind} of {reference}",
                      idempotency_key=f"{prefix}{already + take}:balance")
    owed = delta - take
    if owed:
        post_transfer(conn, debit_account_id=account_id(conn, RECEIVABLES),
                      credit_account_id=clearing, amount_nano=owed, kind=f"{kind}_owed",
                      actor=actor, reason=f"{kind} of {reference}: credit already spent",
                      idempotency_key=f"{prefix}{already + delta}:owed")
        st = state.get_state(conn, organization_id, lock=True)
        conn.execute(billing_states.update()
                     .where(billing_states.c.organization_id == organization_id)
                     .values(owed_nano=billing_states.c.owed_nano + owed))
        if not st.suspended:
            state.suspend(conn, organization_id, actor=actor,
                          reason=f"a {kind} took back ${nano_to_usd(owed)} of credit already "
                                 "spent; a payment will settle it")
    return owed


def settle_owed(conn: sa.Connection, organization_id: str, *, actor: str) -> int:
    """After a payment: repay what the organization owes from its balance; returns what was
    repaid. The caller lifts the suspension once nothing is owed."""
    st = conn.execute(sa.select(billing_states.c.owed_nano).where(
        billing_states.c.organization_id == organization_id)).scalar()
    owed = int(st or 0)
    if owed <= 0:
        return 0
    acct = org_account_id(conn, organization_id)
    pay = min(owed, max(0, lock_available(conn, acct)))
    if pay:
        post_transfer(conn, debit_account_id=acct,
                      credit_account_id=account_id(conn, RECEIVABLES), amount_nano=pay,
                      kind="owed_settled", actor=actor, reason="settles a refund or dispute")
        conn.execute(billing_states.update()
                     .where(billing_states.c.organization_id == organization_id)
                     .values(owed_nano=billing_states.c.owed_nano - pay))
    return pay


def owed(conn: sa.Connection, organization_id: str) -> int:
    return int(conn.execute(sa.select(billing_states.c.owed_nano).where(
        billing_states.c.organization_id == organization_id)).scalar() or 0)


def organization_of_payment(conn: sa.Connection, payment_id: str) -> str | None:
    found = conn.execute(sa.select(receipts.c.organization_id)
                         .where(receipts.c.payment_id == payment_id)).scalar()
    return str(found) if found is not None else None


async def refund_payment(db: Database, processor: PaymentProcessor, *, payment_id: str,
                         amount_nano: int | None, actor: str, idempotency_key: str) -> int:
    """Refund a payment to the card (all of it, or `amount_nano`) and take the credit back at
    once; the processor's later `charge.refunded` event finds it already booked. Returns the
    nano-USD left owed (credit already spent)."""
    org = await db.run(organization_of_payment, payment_id)
    if org is None:
        raise NotFound(f"No payment {payment_id!r} has been credited here.")
    refund = await processor.refund(
        payment_id=payment_id,
        amount_minor=nano_to_cents(amount_nano) if amount_nano is not None else None,
        idempotency_key=idempotency_key)
    if refund.status == "failed":
        raise Refused(f"The processor refused the refund {refund.refund_id}.")
    prefix = f"refund:{processor.name}:{payment_id}:"

    def book(conn: sa.Connection) -> int:
        already = _booked(conn, prefix)
        total_minor = nano_to_cents(already) + refund.amount_minor
        trail.record(conn, action="payment.refunded", actor=actor, target=payment_id,
                     organization_id=org, detail={"refund_id": refund.refund_id,
                                                  "amount_minor": refund.amount_minor})
        return take_back(conn, processor=processor.name, organization_id=org,
                         reference=payment_id, total_minor=total_minor, kind="refund",
                         actor=actor)
    return await db.run(book)
