"""Customers and saved payment methods, as Stripe keeps them."""

from __future__ import annotations

import sqlalchemy as sa

from faregate.db.schema import sandbox_customers, sandbox_payment_methods
from faregate.kit.ids import new_id
from faregate.payments.processor import PaymentError, SavedMethod
from faregate.payments.sandbox.behaviors import BEHAVIORS
from faregate.payments.sandbox.store import customer_exists, load_method, missing, now

DETACHED = ("This PaymentMethod was previously detached from a Customer, and may not be used "
            "again.")


def create_customer(conn: sa.Connection, *, reference: str | None, email: str | None) -> str:
    customer_id = new_id("cus")
    conn.execute(sandbox_customers.insert().values(
        id=customer_id, email=email, reference=reference, created_at=now()))
    return customer_id


def attach_method(conn: sa.Connection, *, customer_id: str, method_id: str) -> SavedMethod:
    """Stripe's attach: refused for a card that simulates an issuer decline (it is checked with
    the issuer), for a method detached before or saved by another customer. Attaching again to
    the same customer returns the method."""
    if not customer_exists(conn, customer_id):
        raise missing("customer", customer_id, "customer")
    method = load_method(conn, method_id, for_update=True)
    if method.detached:
        raise PaymentError(DETACHED, code="payment_method_unexpected_state",
                           param="payment_method")
    if method.customer_id == customer_id:
        return method.saved()
    if method.customer_id is not None:
        raise PaymentError("The payment method you provided has already been attached to a "
                           "customer.", code="payment_method_unexpected_state",
                           param="payment_method")
    behavior = BEHAVIORS[method.behavior]
    if behavior.attach_declined and behavior.decline is not None:
        raise behavior.decline.error()
    # The conditional update settles a race between two customers attaching the same method.
    done = conn.execute(sandbox_payment_methods.update().where(
        sandbox_payment_methods.c.id == method_id,
        sandbox_payment_methods.c.customer_id.is_(None),
        sandbox_payment_methods.c.detached_at.is_(None),
    ).values(customer_id=customer_id))
    if done.rowcount != 1:
        raise PaymentError("The payment method you provided has already been attached to a "
                           "customer.", code="payment_method_unexpected_state",
                           param="payment_method")
    return load_method(conn, method_id).saved()


def detach_method(conn: sa.Connection, *, method_id: str) -> None:
    """Permanent, as on Stripe: a detached method can no longer be charged or attached."""
    method = load_method(conn, method_id, for_update=True)
    if method.detached or method.customer_id is None:
        raise PaymentError("The payment method you provided is not attached to a customer so "
                           "detachment is impossible.", code="payment_method_unexpected_state",
                           param="payment_method")
    conn.execute(sandbox_payment_methods.update().where(
        sandbox_payment_methods.c.id == method_id).values(customer_id=None, detached_at=now()))
