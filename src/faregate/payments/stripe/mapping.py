"""Stripe's objects and errors turned into the processor protocol's values. Pure functions.

Fields real Stripe always sends (maybe as null) are read with `_field`, so a test double that
leaves some out (localstripe omits `billing_details.address`, for one) reads as null too."""

from __future__ import annotations

from typing import Any

import stripe

from faregate.payments.processor import (
    BillingDetails,
    CardInfo,
    Charge,
    ChargeStatus,
    NextAction,
    PaymentError,
    Refund,
    SavedMethod,
)

AUTHENTICATION_REQUIRED = "authentication_required"
BRANDS = frozenset({"visa", "mastercard", "amex", "unionpay", "discover", "jcb", "diners"})


def _field(obj: object, key: str) -> Any:
    if isinstance(obj, stripe.StripeObject) and key in obj:
        return obj[key]
    return None


def _str(obj: object, key: str) -> str | None:
    value = _field(obj, key)
    return value if isinstance(value, str) and value else None


def object_id(value: object) -> str | None:
    """The id of an expandable field: a bare id, or the expanded object's id."""
    if isinstance(value, str):
        return value or None
    return _str(value, "id")


def saved_method(method: stripe.PaymentMethod, customer_id: str) -> SavedMethod:
    card = _field(method, "card")
    if method.type != "card" or card is None:
        raise PaymentError("Only cards can be saved.", code="payment_method_unsupported")
    brand = _str(card, "brand") or "unknown"
    billing = _field(method, "billing_details")
    address = _field(billing, "address")
    return SavedMethod(
        method_id=method.id,
        customer_id=customer_id,
        card=CardInfo(
            brand=brand if brand in BRANDS else "unknown",
            last4=_str(card, "last4") or "",
            exp_month=int(_field(card, "exp_month") or 0),
            exp_year=int(_field(card, "exp_year") or 0),
            # Never a shared placeholder: billing deduplicates cards on the fingerprint.
            fingerprint=_str(card, "fingerprint") or f"pm:{method.id}",
            country=_str(card, "country"),
        ),
        billing=BillingDetails(
            name=_str(billing, "name"),
            line1=_str(address, "line1"),
            city=_str(address, "city"),
            state=_str(address, "state"),
            postal_code=_str(address, "postal_code"),
            country=_str(address, "country"),
        ),
    )


def decline_code(error: object) -> str | None:
    """The issuer's reason (`insufficient_funds`), else Stripe's code (`expired_card`)."""
    return _str(error, "decline_code") or _str(error, "code")


def charge_from_intent(intent: stripe.PaymentIntent, *, off_session: bool = False) -> Charge:
    """A PaymentIntent as a Charge. An authentication a customer must still give is
    `requires_action` (with the client secret), whether Stripe left the intent waiting for it
    or declined an off-session attempt with `authentication_required`."""
    error = _field(intent, "last_payment_error")
    code = decline_code(error)
    status: ChargeStatus
    match intent.status:
        case "succeeded" | "canceled" | "processing":
            status = intent.status
        case "requires_action" | "requires_confirmation":
            status = "requires_action"
            if off_session and code is None:
                code = AUTHENTICATION_REQUIRED
        case "requires_payment_method":
            if code == AUTHENTICATION_REQUIRED:
                status = "requires_action"
            else:
                status = "failed" if error is not None else "requires_action"
        case _:  # requires_capture (authorized, not yet money) and statuses yet to come
            status = "processing"
    return Charge(
        status=status,
        payment_id=intent.id,
        amount_minor=intent.amount,
        currency=intent.currency,
        customer_id=object_id(_field(intent, "customer")),
        method_id=object_id(_field(intent, "payment_method")),
        decline_code=code,
        message=_str(error, "message") if status in ("failed", "requires_action") else None,
        client_secret=_str(intent, "client_secret") if status == "requires_action" else None,
        next_action=next_action(intent) if status == "requires_action" else None,
    )


def next_action(intent: stripe.PaymentIntent) -> NextAction | None:
    """A wallet payment's next action: Alipay's redirect (`alipay_handle_redirect`, or the
    generic `redirect_to_url`), WeChat Pay's QR code (`wechat_pay_display_qr_code`). Card
    authentication (`use_stripe_sdk`) is left to Stripe.js with the client secret."""
    action = _field(intent, "next_action")
    kind = _str(action, "type")
    detail = _field(action, kind) if kind else None
    if kind in ("alipay_handle_redirect", "redirect_to_url") and _str(detail, "url"):
        return NextAction("redirect", url=_str(detail, "url"))
    if kind == "wechat_pay_display_qr_code" and _str(detail, "data"):
        return NextAction("qr_code", url=_str(detail, "hosted_instructions_url"),
                          qr_data=_str(detail, "data"),
                          qr_image_url=_str(detail, "image_url_png")
                          or _str(detail, "image_data_url"))
    return None


def charge_from_card_error(err: stripe.CardError, *, payment_id: str | None, amount_minor: int,
                           currency: str, customer_id: str | None,
                           method_id: str | None) -> Charge:
    """A decline (HTTP 402). `payment_id` is the intent the error names or one found by the
    caller; an `authentication_required` decline keeps the client secret so the customer can
    complete the payment on-session."""
    error = err.error
    code = decline_code(error) or "card_declined"
    intent = _field(error, "payment_intent")
    needs_customer = code == AUTHENTICATION_REQUIRED
    return Charge(
        status="requires_action" if needs_customer else "failed",
        payment_id=payment_id,
        amount_minor=amount_minor,
        currency=currency,
        customer_id=customer_id,
        method_id=method_id,
        decline_code=code,
        message=_str(error, "message") or err.user_message or "Your card was declined.",
        client_secret=_str(intent, "client_secret") if needs_customer else None,
    )


def charge_from_stripe_charge(charge: stripe.Charge) -> Charge:
    """A Charge object (charge.* events) as a Charge, keyed by its PaymentIntent."""
    statuses: dict[str, ChargeStatus] = {"succeeded": "succeeded", "failed": "failed"}
    failed = charge.status == "failed"
    return Charge(
        status=statuses.get(charge.status, "processing"),
        payment_id=object_id(_field(charge, "payment_intent")),
        amount_minor=charge.amount,
        currency=charge.currency,
        customer_id=object_id(_field(charge, "customer")),
        method_id=_str(charge, "payment_method"),
        decline_code=_str(charge, "failure_code") if failed else None,
        message=_str(charge, "failure_message") if failed else None,
    )


def declined_intent_id(err: stripe.CardError) -> str | None:
    return object_id(_field(err.error, "payment_intent"))


def declined_charge_id(err: stripe.CardError) -> str | None:
    return _str(err.error, "charge")


def refund_from(refund: stripe.Refund, payment_id: str) -> Refund:
    status = _str(refund, "status")
    return Refund(
        refund_id=refund.id,
        payment_id=object_id(_field(refund, "payment_intent")) or payment_id,
        amount_minor=refund.amount,
        status=("succeeded" if status == "succeeded"
                else "failed" if status in ("failed", "canceled") else "pending"),
    )


def payment_error(err: stripe.StripeError) -> PaymentError:
    """A refused request. Retryable: no answer at all, 409 (a concurrent request with the same
    key), 429 and 5xx; a retry must reuse the idempotency key."""
    error = err.error
    status = err.http_status or 0
    retryable = (isinstance(err, stripe.APIConnectionError | stripe.RateLimitError)
                 or status == 409 or status >= 500)
    code = err.code or _str(error, "code")
    if isinstance(err, stripe.IdempotencyError):
        code = code or "idempotency_error"
    return PaymentError(
        _str(error, "message") or err.user_message or type(err).__name__,
        code=code,
        param=_str(error, "param"),
        decline_code=_str(error, "decline_code"),
        retryable=retryable,
    )
