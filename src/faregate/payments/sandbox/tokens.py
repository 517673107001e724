"""Tokenization: card data in, a `pm_…` id out. The sandbox's stand-in for Stripe.js creating
a PaymentMethod. The row keeps brand, last 4, expiry, fingerprint and the test card's scripted
behaviour; the number and the CVC are checked, then dropped."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from faregate.db.schema import sandbox_payment_methods
from faregate.kit.ids import new_id
from faregate.payments.processor import BillingDetails, PaymentError
from faregate.payments.sandbox.behaviors import card_for
from faregate.payments.sandbox.cards import fingerprint, validate_card
from faregate.payments.sandbox.store import billing_json, now

# Only Stripe's published test numbers are ever accepted (a real card is refused before
# anything is stored), so the fingerprint protects nothing secret. The key is fixed so that
# every process, and every restart, gives the same card the same fingerprint.
FINGERPRINT_KEY = b"faregate-sandbox-fingerprint-v1"
BILLING_FIELD_MAX_CHARS = 200


def _checked_billing(billing: BillingDetails, postal_code: str) -> BillingDetails:
    values: dict[str, str | None] = {}
    for name in ("name", "line1", "city", "state", "country"):
        value = getattr(billing, name)
        if value is not None:
            value = value.strip() or None
        if value is not None and len(value) > BILLING_FIELD_MAX_CHARS:
            param = "billing_details[name]" if name == "name" else \
                f"billing_details[address][{name}]"
            raise PaymentError("This value is too long.", code=None,
                               param=param)
        values[name] = value
    country = values["country"]
    return BillingDetails(name=values["name"], line1=values["line1"], city=values["city"],
                          state=values["state"], postal_code=postal_code,
                          country=country.upper() if country else None)


def tokenize(conn: sa.Connection, number: str, exp_month: object, exp_year: object, cvc: str,
             postal_code: str | None, billing: BillingDetails, *,
             fingerprint_key: bytes = FINGERPRINT_KEY, today: dt.date | None = None) -> str:
    """Validate the card, refuse a non-test number, store the method; returns its `pm_` id.
    Raises PaymentError (Stripe's code and param) for every refusal."""
    card = validate_card(number, exp_month, exp_year, cvc, postal_code, today=today)
    scripted = card_for(card.number)
    details = _checked_billing(billing, card.postal_code)
    method_id = new_id("pm")
    conn.execute(sandbox_payment_methods.insert().values(
        id=method_id, customer_id=None, brand=card.brand, last4=card.last4,
        exp_month=card.exp_month, exp_year=card.exp_year,
        fingerprint=fingerprint(card.number, fingerprint_key), country=scripted.country,
        behavior=scripted.behavior.name, billing=billing_json(details), created_at=now()))
    return method_id
