"""Payments (Stripe PaymentIntents) and refunds, with Stripe's idempotency: the first request
with a key saves its result; the same key with the same parameters returns that payment again,
with other parameters it is refused. A request refused before it starts (unknown method, bad
amount) saves nothing and may be retried. Concurrent duplicates meet at the unique index on
`sandbox_payments.idempotency_key`: one insert wins, the others read its row."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from faregate.db.schema import sandbox_payments
from faregate.kit.ids import new_id
from faregate.payments.processor import WALLETS, PaymentError
from faregate.payments.sandbox.behaviors import (
    BEHAVIORS,
    Decline,
    Outcome,
    after_authentication,
    attempt,
    verification,
)
from faregate.payments.sandbox.store import (
    CHARGE,
    REFUND,
    VERIFICATION,
    SandboxMethod,
    SandboxPayment,
    customer_exists,
    is_set_up,
    load_method,
    load_payment,
    missing,
    now,
    payment_by_key,
    payment_from_row,
)

MIN_AMOUNT_MINOR = 50  # Stripe: "Amount must be at least $0.50 usd"
MAX_AMOUNT_MINOR = 99_999_999  # Stripe: "Amount must be no more than $999,999.99"
IDEMPOTENCY_KEY_MAX_CHARS = 200  # the column; Stripe allows 255


def _request_hash(*params: object) -> str:
    return hashlib.sha256(json.dumps(params, separators=(",", ":")).encode()).hexdigest()


def _check_key(key: str) -> None:
    if not key or len(key) > IDEMPOTENCY_KEY_MAX_CHARS:
        raise PaymentError(f"Idempotency keys must be 1 to {IDEMPOTENCY_KEY_MAX_CHARS} "
                           "characters long.", param="idempotency_key")


def _check_amount(amount_minor: int, currency: str) -> str:
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise PaymentError("Invalid integer.", code="parameter_invalid_integer", param="amount")
    if amount_minor < MIN_AMOUNT_MINOR:
        raise PaymentError("Amount must be at least $0.50 usd", code="amount_too_small",
                           param="amount")
    if amount_minor > MAX_AMOUNT_MINOR:
        raise PaymentError("Amount must be no more than $999,999.99", code="amount_too_large",
                           param="amount")
    code = currency.lower()
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        raise PaymentError("Invalid currency.", param="currency")
    return code


def _payable_method(conn: sa.Connection, customer_id: str, method_id: str) -> SandboxMethod:
    if not customer_exists(conn, customer_id):
        raise missing("customer", customer_id, "customer")
    method = load_method(conn, method_id)
    if method.detached:
        raise PaymentError("This PaymentMethod was previously detached from a Customer, and "
                           "may not be used again.", code="payment_method_unexpected_state",
                           param="payment_method")
    if method.customer_id not in (None, customer_id):
        raise PaymentError("The provided PaymentMethod is attached to a different Customer.",
                           code="payment_method_unexpected_state", param="payment_method")
    return method


def _idempotent(conn: sa.Connection, key: str, request_hash: str,
                build: Callable[[], dict[str, Any]]) -> tuple[SandboxPayment, bool]:
    """(the payment saved under `key`, whether this call created it)."""
    _check_key(key)
    found = payment_by_key(conn, key)
    if found is None:
        values = build() | {"idempotency_key": key, "request_hash": request_hash}
        try:
            with conn.begin_nested():
                conn.execute(sandbox_payments.insert().values(**values))
            return payment_from_row(values), True
        except IntegrityError:
            # A concurrent request with the same key committed first: it is the payment.
            found = payment_by_key(conn, key)
            if found is None:
                raise
    payment, saved_hash = found
    if saved_hash != request_hash:
        raise PaymentError(
            "Keys for idempotent requests can only be used with the same parameters they were "
            f"first used with. Try using a key other than '{key}' if you meant to execute a "
            "different request.", code="idempotency_key_in_use")
    return payment, False


def _payment_values(kind: str, *, customer_id: str, method_id: str, amount_minor: int,
                    currency: str, off_session: bool, outcome: Outcome) -> dict[str, Any]:
    if outcome.needs_auth:
        status = "requires_action"
    elif outcome.decline is not None:
        status = "failed"
    else:
        # A verification is authorized, then canceled at once (the hold is released).
        status = "canceled" if kind == VERIFICATION else "succeeded"
    decline = outcome.decline
    return {"id": new_id("pi"), "customer_id": customer_id, "method_id": method_id,
            "amount_minor": amount_minor, "currency": currency, "status": status,
            "capture_method": kind, "off_session": off_session,
            "decline_code": decline.reason if decline else None,
            "message": decline.message if decline else None, "refunded_minor": 0,
            "created_at": now()}


def verify_card(conn: sa.Connection, *, customer_id: str, method_id: str, amount_minor: int,
                currency: str, idempotency_key: str) -> SandboxPayment:
    """Authorize `amount_minor` (manual capture) and cancel it: status canceled when the card
    held it, failed with the decline, or requires_action (the customer must authenticate)."""
    request_hash = _request_hash("verify_card", customer_id, method_id, amount_minor, currency)

    def build() -> dict[str, Any]:
        cur = _check_amount(amount_minor, currency)
        method = _payable_method(conn, customer_id, method_id)
        outcome = verification(BEHAVIORS[method.behavior], set_up=is_set_up(conn, method_id))
        return _payment_values(VERIFICATION, customer_id=customer_id, method_id=method_id,
                               amount_minor=amount_minor, currency=cur, off_session=False,
                               outcome=outcome)

    return _idempotent(conn, idempotency_key, request_hash, build)[0]


def charge(conn: sa.Connection, *, customer_id: str, method_id: str, amount_minor: int,
           currency: str, off_session: bool, idempotency_key: str,
           description: str) -> SandboxPayment:
    """Charge the method (automatic capture): succeeded, failed with the decline (off-session
    authentication_required included), or requires_action (on-session)."""
    request_hash = _request_hash("charge", customer_id, method_id, amount_minor, currency,
                                 off_session, description)

    def build() -> dict[str, Any]:
        cur = _check_amount(amount_minor, currency)
        method = _payable_method(conn, customer_id, method_id)
        outcome = attempt(BEHAVIORS[method.behavior], off_session=off_session,
                          set_up=is_set_up(conn, method_id))
        return _payment_values(CHARGE, customer_id=customer_id, method_id=method_id,
                               amount_minor=amount_minor, currency=cur,
                               off_session=off_session, outcome=outcome)

    return _idempotent(conn, idempotency_key, request_hash, build)[0]


def wallet_payment(conn: sa.Connection, *, customer_id: str, wallet: str, amount_minor: int,
                   currency: str, idempotency_key: str, description: str,
                   return_url: str) -> SandboxPayment:
    """A PaymentIntent paid with Alipay or WeChat Pay: requires_action until the customer
    authorizes it in the wallet (`authenticate`). `method_id` names the wallet."""
    request_hash = _request_hash("wallet", customer_id, wallet, amount_minor, currency,
                                 description, return_url)

    def build() -> dict[str, Any]:
        cur = _check_amount(amount_minor, currency)
        if wallet not in WALLETS:
            raise PaymentError(f"The payment method type {wallet!r} is invalid.",
                               param="payment_method_types")
        if not customer_exists(conn, customer_id):
            raise missing("customer", customer_id, "customer")
        return _payment_values(CHARGE, customer_id=customer_id, method_id=wallet,
                               amount_minor=amount_minor, currency=cur, off_session=False,
                               outcome=Outcome(needs_auth=True))

    return _idempotent(conn, idempotency_key, request_hash, build)[0]


def _wallet_outcome(authorized: bool) -> Outcome:
    return Outcome() if authorized else Outcome(decline=Decline(
        "payment_intent_authentication_failure", None,
        "The customer did not authorize the payment in their wallet."))


def authenticate(conn: sa.Connection, *, payment_id: str, authenticated: bool
                 ) -> SandboxPayment:
    """The customer completed (or failed) the authentication of a payment that asked for it
    (requires_action, or an off-session attempt declined with authentication_required). A
    completed verification sets the card up for off-session charges."""
    payment = load_payment(conn, payment_id, for_update=True)
    if not payment.awaits_customer or payment.method_id is None:
        raise PaymentError(f"This PaymentIntent's status is {payment.status}; it does not need "
                           "authentication.", code="payment_intent_unexpected_state",
                           param="intent")
    if payment.method_id in WALLETS:  # authorized (or not) in the wallet's app
        outcome = _wallet_outcome(authenticated)
    else:
        method = load_method(conn, payment.method_id)
        outcome = after_authentication(BEHAVIORS[method.behavior], authenticated=authenticated)
    values = _payment_values(payment.capture_method, customer_id=payment.customer_id or "",
                             method_id=payment.method_id, amount_minor=payment.amount_minor,
                             currency=payment.currency, off_session=payment.off_session,
                             outcome=outcome)
    changes = {k: values[k] for k in ("status", "decline_code", "message")}
    conn.execute(sandbox_payments.update().where(
        sandbox_payments.c.id == payment_id,
        sandbox_payments.c.status == payment.status).values(**changes))
    return load_payment(conn, payment_id)


def retrieve(conn: sa.Connection, payment_id: str) -> SandboxPayment:
    return load_payment(conn, payment_id)


def refund(conn: sa.Connection, *, payment_id: str, amount_minor: int | None,
           idempotency_key: str) -> SandboxPayment:
    """Refund part or all (None) of what is left of a succeeded charge; returns the refund's
    row (id `re_…`, its amount; `message` names the payment). The payment's `refunded_minor`
    grows by a conditional update, so refunds never exceed the amount."""
    request_hash = _request_hash("refund", payment_id, amount_minor)

    def build() -> dict[str, Any]:
        payment = load_payment(conn, payment_id, for_update=True)
        if payment.capture_method != CHARGE or payment.status != "succeeded":
            raise PaymentError("This PaymentIntent does not have a successful charge to refund.",
                               code="payment_intent_unexpected_state", param="payment_intent")
        left = payment.amount_minor - payment.refunded_minor
        if left <= 0:
            raise PaymentError(f"Charge for {payment_id} has already been refunded.",
                               code="charge_already_refunded", param="payment_intent")
        amount = left if amount_minor is None else amount_minor
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise PaymentError("Invalid positive integer.", code="parameter_invalid_integer",
                               param="amount")
        if amount > left:
            raise PaymentError(f"Refund amount ({amount}) is greater than the unrefunded "
                               f"amount on the charge ({left}).", code="amount_too_large",
                               param="amount")
        return {"id": new_id("re"), "customer_id": payment.customer_id,
                "method_id": payment.method_id, "amount_minor": amount,
                "currency": payment.currency, "status": "succeeded", "capture_method": REFUND,
                "off_session": False, "decline_code": None,
                "message": f"Refund of {payment_id}", "refunded_minor": 0,
                "created_at": now()}

    row, created = _idempotent(conn, idempotency_key, request_hash, build)
    if created:
        p = sandbox_payments.c
        done = conn.execute(sandbox_payments.update().where(
            p.id == payment_id, p.refunded_minor + row.amount_minor <= p.amount_minor,
        ).values(refunded_minor=p.refunded_minor + row.amount_minor))
        if done.rowcount != 1:  # raising rolls the refund row back too
            raise PaymentError("Refund amount is greater than the unrefunded amount on the "
                               "charge.", code="amount_too_large", param="amount")
    return row
