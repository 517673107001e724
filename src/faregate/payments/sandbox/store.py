"""The sandbox's records (customers, payment methods, payments) and their reading. Payments
are Stripe PaymentIntents; refunds are rows of the same table (see `intents.refund`)."""

from __future__ import annotations

import datetime as dt
import hmac
import json
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from faregate.db.schema import sandbox_customers, sandbox_payment_methods, sandbox_payments
from faregate.kit.crypto import keyed_hash
from faregate.payments.processor import (
    BillingDetails,
    CardInfo,
    Charge,
    ChargeStatus,
    PaymentError,
    SavedMethod,
)

# sandbox_payments.capture_method: a verification authorizes then cancels (manual capture), a
# charge captures at once (automatic), and a refund row records one refund of a payment.
VERIFICATION = "manual"
CHARGE = "automatic"
REFUND = "refund"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class SandboxMethod:
    id: str
    customer_id: str | None
    card: CardInfo
    behavior: str
    billing: BillingDetails
    detached: bool

    def saved(self) -> SavedMethod:
        assert self.customer_id is not None
        return SavedMethod(method_id=self.id, customer_id=self.customer_id, card=self.card,
                           billing=self.billing)


@dataclass(frozen=True, slots=True)
class SandboxPayment:
    id: str
    customer_id: str | None
    method_id: str | None
    amount_minor: int
    currency: str
    status: str  # succeeded | failed | requires_action | canceled
    capture_method: str  # VERIFICATION | CHARGE | REFUND
    off_session: bool
    decline_code: str | None  # the failure: a decline code, else Stripe's error code
    message: str | None
    refunded_minor: int
    created_at: dt.datetime

    def charge(self, client_secret: str | None = None) -> Charge:
        status: ChargeStatus = self.status  # type: ignore[assignment]
        return Charge(status=status, payment_id=self.id, amount_minor=self.amount_minor,
                      currency=self.currency, customer_id=self.customer_id,
                      method_id=self.method_id, decline_code=self.decline_code,
                      message=self.message, client_secret=client_secret)

    @property
    def awaits_customer(self) -> bool:
        """The customer can still authenticate it (in the browser, with the client secret)."""
        return self.capture_method != REFUND and (
            self.status == "requires_action"
            or (self.status == "failed" and self.decline_code == "authentication_required"))


def billing_json(billing: BillingDetails) -> str:
    return json.dumps(asdict(billing), separators=(",", ":"))


def billing_from_json(text: str | None) -> BillingDetails:
    if not text:
        return BillingDetails()
    data: dict[str, Any] = json.loads(text)
    fields = BillingDetails.__dataclass_fields__
    return BillingDetails(**{k: v for k, v in data.items() if k in fields})


def method_from_row(row: sa.RowMapping) -> SandboxMethod:
    card = CardInfo(brand=row["brand"], last4=row["last4"], exp_month=row["exp_month"],
                    exp_year=row["exp_year"], fingerprint=row["fingerprint"],
                    country=row["country"])
    return SandboxMethod(id=row["id"], customer_id=row["customer_id"], card=card,
                         behavior=row["behavior"], billing=billing_from_json(row["billing"]),
                         detached=row["detached_at"] is not None)


def payment_from_row(row: sa.RowMapping | dict[str, Any]) -> SandboxPayment:
    return SandboxPayment(
        id=row["id"], customer_id=row["customer_id"], method_id=row["method_id"],
        amount_minor=int(row["amount_minor"]), currency=row["currency"], status=row["status"],
        capture_method=row["capture_method"], off_session=bool(row["off_session"]),
        decline_code=row["decline_code"], message=row["message"],
        refunded_minor=int(row.get("refunded_minor") or 0), created_at=row["created_at"])


def missing(kind: str, ident: str, param: str) -> PaymentError:
    return PaymentError(f"No such {kind}: '{ident}'", code="resource_missing", param=param)


def customer_exists(conn: sa.Connection, customer_id: str) -> bool:
    return conn.execute(sa.select(sa.literal(1)).where(
        sandbox_customers.c.id == customer_id)).first() is not None


def load_method(conn: sa.Connection, method_id: str, *, for_update: bool = False
                ) -> SandboxMethod:
    query = sa.select(sandbox_payment_methods).where(sandbox_payment_methods.c.id == method_id)
    if for_update:
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    if row is None:
        raise missing("payment_method", method_id, "payment_method")
    return method_from_row(row)


def find_payment(conn: sa.Connection, payment_id: str, *, for_update: bool = False
                 ) -> SandboxPayment | None:
    query = sa.select(sandbox_payments).where(sandbox_payments.c.id == payment_id,
                                              sandbox_payments.c.capture_method != REFUND)
    if for_update:
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return payment_from_row(row) if row is not None else None


def load_payment(conn: sa.Connection, payment_id: str, *, for_update: bool = False
                 ) -> SandboxPayment:
    payment = find_payment(conn, payment_id, for_update=for_update)
    if payment is None:
        raise missing("payment_intent", payment_id, "intent")
    return payment


def payment_by_key(conn: sa.Connection, idempotency_key: str
                   ) -> tuple[SandboxPayment, str | None] | None:
    row = conn.execute(sa.select(sandbox_payments).where(
        sandbox_payments.c.idempotency_key == idempotency_key)).mappings().first()
    return (payment_from_row(row), row["request_hash"]) if row is not None else None


def is_set_up(conn: sa.Connection, method_id: str) -> bool:
    """A verification of the method succeeded: off-session charges need no authentication
    (Stripe's "set up for future payments")."""
    p = sandbox_payments.c
    return conn.execute(sa.select(sa.literal(1)).where(
        p.method_id == method_id, p.capture_method == VERIFICATION, p.status == "canceled",
        p.decline_code.is_(None)).limit(1)).first() is not None


def client_secret(key: bytes, payment_id: str) -> str:
    """Stripe's `pi_…_secret_…`: what the browser needs to authenticate the payment."""
    tag = keyed_hash(key, payment_id, purpose="sandbox-client-secret")[:24]
    return f"{payment_id}_secret_{tag}"


def client_secret_ok(key: bytes, payment_id: str, candidate: str) -> bool:
    return hmac.compare_digest(client_secret(key, payment_id).encode(),
                               candidate.encode("utf-8", "surrogatepass"))
