"""Webhook events signed and verified as Stripe does: header
`Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<payload>")>`, any of several v1
signatures may match (secret rotation), other schemes are ignored, comparison in constant time,
and a timestamp older than 300 s is refused (a future one is not, like stripe-python)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from faregate.kit.ids import new_id
from faregate.payments.processor import ChargeStatus, WebhookSignatureError
from faregate.payments.sandbox.store import (
    REFUND,
    VERIFICATION,
    SandboxPayment,
    payment_from_row,
)

DEFAULT_TOLERANCE_S = 300
SCHEME = "v1"
# Our payment states, as a PaymentIntent's `status`.
_PI_STATUS = {"succeeded": "succeeded", "failed": "requires_payment_method",
              "requires_action": "requires_action", "canceled": "canceled",
              "processing": "processing"}
# Failure codes that Stripe reports as code card_declined with this decline_code.
_CARD_DECLINED = frozenset({"generic_decline", "insufficient_funds", "lost_card", "stolen_card",
                            "card_velocity_exceeded", "test_mode_live_card"})


def _signature(payload: bytes, secret: bytes, timestamp: int) -> str:
    signed = str(timestamp).encode() + b"." + payload
    return hmac.new(secret, signed, hashlib.sha256).hexdigest()


def sign_payload(payload: bytes, secret: bytes, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header value for `payload`."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},{SCHEME}={_signature(payload, secret, t)}"


def verify_signature(payload: bytes, header: str | None, secrets: Iterable[bytes], *,
                     tolerance_s: int = DEFAULT_TOLERANCE_S, now: float | None = None) -> int:
    """Check the header against `payload`; returns its timestamp. WebhookSignatureError with
    stripe-python's messages otherwise."""
    if not header:
        raise WebhookSignatureError("No Stripe-Signature header")
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                timestamp = None
        elif key == SCHEME:
            signatures.append(value)
    if timestamp is None:
        raise WebhookSignatureError("Unable to extract timestamp and signatures from header")
    if not signatures:
        raise WebhookSignatureError("No signatures found with expected scheme v1")
    expected = [_signature(payload, s, timestamp).encode() for s in secrets]
    if not any(hmac.compare_digest(e, sig.encode("utf-8", "surrogatepass"))
               for e in expected for sig in signatures):
        raise WebhookSignatureError("No signatures found matching the expected signature for "
                                    "payload")
    current = time.time() if now is None else now
    if tolerance_s and timestamp < current - tolerance_s:
        raise WebhookSignatureError(f"Timestamp outside the tolerance zone ({timestamp})")
    return timestamp


def last_payment_error(reason: str | None, message: str | None) -> dict[str, Any] | None:
    if reason is None:
        return None
    if reason in _CARD_DECLINED:
        code, decline_code = "card_declined", reason
    elif reason == "authentication_required":
        code, decline_code = reason, reason
    else:
        code, decline_code = reason, None
    return {"type": "card_error", "code": code, "decline_code": decline_code,
            "message": message}


def payment_intent_object(payment: SandboxPayment,
                          client_secret: str | None = None) -> dict[str, Any]:
    """The payment as Stripe's PaymentIntent object."""
    return {
        "id": payment.id, "object": "payment_intent", "amount": payment.amount_minor,
        "amount_received": payment.amount_minor if payment.status == "succeeded" else 0,
        "currency": payment.currency, "customer": payment.customer_id,
        "payment_method": payment.method_id,
        "capture_method": "manual" if payment.capture_method == VERIFICATION else "automatic",
        "status": _PI_STATUS.get(payment.status, payment.status),
        "last_payment_error": last_payment_error(payment.decline_code, payment.message),
        "client_secret": client_secret,
        "created": int(payment.created_at.timestamp()), "livemode": False,
    }


def charge_object(payment: SandboxPayment) -> dict[str, Any]:
    """The payment's charge as Stripe's Charge object (what charge.* events carry)."""
    return {
        "id": "ch_" + payment.id.removeprefix("pi_"), "object": "charge",
        "amount": payment.amount_minor, "amount_refunded": payment.refunded_minor,
        "refunded": payment.refunded_minor >= payment.amount_minor,
        "currency": payment.currency, "customer": payment.customer_id,
        "payment_intent": payment.id, "payment_method": payment.method_id,
        "status": "succeeded" if payment.status == "succeeded" else "failed",
        "created": int(payment.created_at.timestamp()), "livemode": False,
    }


def event_payload(event_type: str,
                  payment: SandboxPayment | sa.Row[Any] | Mapping[str, Any], *,
                  event_id: str | None = None, created: int | None = None) -> bytes:
    """A Stripe-shaped event (`payment_intent.*` carry the PaymentIntent, `charge.*` the
    Charge) as the bytes to sign and send, indented like Stripe's. `payment` is a
    sandbox_payments row or its SandboxPayment."""
    if isinstance(payment, sa.Row):
        payment = payment_from_row(payment._mapping)
    elif not isinstance(payment, SandboxPayment):
        payment = payment_from_row(dict(payment))
    if payment.capture_method == REFUND:
        raise ValueError("events are about payments, not refund rows")
    obj = charge_object(payment) if event_type.startswith("charge.") else \
        payment_intent_object(payment)
    event = {"id": event_id or new_id("evt"), "object": "event", "api_version": "2024-06-20",
             "created": int(time.time()) if created is None else created, "livemode": False,
             "type": event_type, "data": {"object": obj}}
    return json.dumps(event, indent=2).encode()


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    event_id: str
    type: str
    object: dict[str, Any]

    @property
    def payment_id(self) -> str | None:
        """The PaymentIntent the event is about, if any."""
        kind = self.object.get("object")
        ident = self.object.get("id") if kind == "payment_intent" else \
            self.object.get("payment_intent") if kind == "charge" else None
        return ident if isinstance(ident, str) else None


def parse_event(payload: bytes) -> ParsedEvent:
    """The fields of a (verified) event payload; WebhookSignatureError when it is not one."""
    try:
        event = json.loads(payload)
    except ValueError as exc:
        raise WebhookSignatureError("The payload is not JSON") from exc
    if not isinstance(event, dict) or event.get("object") != "event":
        raise WebhookSignatureError("The payload is not an event")
    event_id, event_type = event.get("id"), event.get("type")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(event_id, str) or not isinstance(event_type, str) or \
            not isinstance(obj, dict):
        raise WebhookSignatureError("The payload is not an event")
    return ParsedEvent(event_id=event_id, type=event_type, object=obj)


_FROM_PI_STATUS: dict[str, ChargeStatus] = {
    "succeeded": "succeeded", "requires_payment_method": "failed",
    "requires_action": "requires_action", "canceled": "canceled",
    "requires_capture": "succeeded"}


def status_from_object(obj: dict[str, Any]) -> ChargeStatus:
    """A PaymentIntent's (or Charge's) status as a ChargeStatus."""
    status = obj.get("status")
    if obj.get("object") == "charge":
        return "succeeded" if status == "succeeded" else "failed"
    return _FROM_PI_STATUS.get(str(status), "processing")
