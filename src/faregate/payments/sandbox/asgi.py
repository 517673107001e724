"""The sandbox's browser-facing API, mounted at /sandbox/v1: what Stripe.js talks to on Stripe.

  POST /sandbox/v1/payment_methods                 card data in, a PaymentMethod out
  POST /sandbox/v1/payment_intents/{id}/confirm    the 3D Secure page: complete or fail the
                                                   authentication of a payment (with its
                                                   client secret; only when the router is
                                                   given the processor's webhook secret)
  GET, POST /sandbox/v1/wallet_payments/{id}       the wallet's stand-in (Alipay's page, or
                                                   what WeChat Pay's QR code opens): an HTML
                                                   page to authorize or decline the payment

Bodies are form-encoded like Stripe.js sends them (`card[number]`, `card[exp_month]`,
`billing_details[address][postal_code]`, …) or JSON, nested the same way or flat (`number`,
`exp_month`, `exp_year`, `cvc`, `postal_code`, `billing: {name, line1, city, state,
postal_code, country}`). No Faregate session is needed: like Stripe's endpoint it takes any
`Authorization: Bearer pk_…` header, or none. Refusals are Stripe's error object, 402 for card
errors and 400 (404 for an unknown object) otherwise. The card number and CVC are never logged
or echoed; no message quotes an input value."""

from __future__ import annotations

import functools
import html
import json
from collections.abc import Callable, Coroutine, Mapping
from typing import Any
from urllib.parse import parse_qsl

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from faregate.db.runner import Database
from faregate.payments.processor import BillingDetails, PaymentError
from faregate.payments.sandbox import intents
from faregate.payments.sandbox.store import (
    SandboxMethod,
    SandboxPayment,
    client_secret_ok,
    load_method,
    load_payment,
    missing,
)
from faregate.payments.sandbox.tokens import FINGERPRINT_KEY, tokenize
from faregate.payments.sandbox.webhooks import payment_intent_object

MAX_BODY_BYTES = 16 * 1024
CARD_ERROR_CODES = frozenset({
    "incorrect_number", "invalid_number", "invalid_expiry_month", "invalid_expiry_year",
    "invalid_cvc", "incorrect_cvc", "expired_card", "incomplete_zip", "incorrect_zip",
    "card_declined", "processing_error", "authentication_required",
    "payment_intent_authentication_failure"})
_ALIASES: dict[str, tuple[str, ...]] = {
    "number": ("card[number]", "number"),
    "exp_month": ("card[exp_month]", "exp_month"),
    "exp_year": ("card[exp_year]", "exp_year"),
    "cvc": ("card[cvc]", "cvc"),
    "postal_code": ("billing_details[address][postal_code]", "postal_code",
                    "billing[postal_code]"),
    "name": ("billing_details[name]", "billing[name]"),
    "line1": ("billing_details[address][line1]", "billing[line1]"),
    "city": ("billing_details[address][city]", "billing[city]"),
    "state": ("billing_details[address][state]", "billing[state]"),
    "country": ("billing_details[address][country]", "billing[country]"),
}


def error_response(exc: PaymentError) -> JSONResponse:
    """Stripe's error object for a refusal."""
    if exc.code in CARD_ERROR_CODES:
        status, kind = 402, "card_error"
    elif exc.code == "idempotency_key_in_use":
        status, kind = 400, "idempotency_error"
    elif exc.code == "resource_missing":
        status, kind = 404, "invalid_request_error"
    else:
        status, kind = 400, "invalid_request_error"
    error: dict[str, Any] = {"type": kind, "code": exc.code, "message": exc.message,
                             "param": exc.param}
    if exc.decline_code is not None:
        error["decline_code"] = exc.decline_code
    return JSONResponse({"error": error}, status_code=status)


class _StripeErrors(APIRoute):
    """Renders a PaymentError as Stripe's error object, so that endpoints stay thin."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except PaymentError as exc:
                return error_response(exc)

        return run


def _flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, item in value.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(item, Mapping):
            out.update(_flatten(item, name))
        elif item is not None and not isinstance(item, list):
            out[name] = item
    return out


async def read_params(request: Request) -> dict[str, object]:
    """The body's parameters with Stripe's bracketed names, from a form or JSON body."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise PaymentError("The request body is too large.")
    if not body.strip():
        return {}
    if request.headers.get("content-type", "").split(";")[0].strip() == "application/json":
        try:
            data = json.loads(body)
        except ValueError:
            raise PaymentError("The request body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise PaymentError("The request body must be a JSON object.")
        return _flatten(data)
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        raise PaymentError("The request body is not valid form data.") from None


def _get(params: Mapping[str, object], field: str) -> object | None:
    for name in _ALIASES[field]:
        if name in params:
            return params[name]
    return None


def _text(params: Mapping[str, object], field: str, *, required: bool) -> str | None:
    value = _get(params, field)
    if value is None:
        if required:
            raise PaymentError(f"Missing required param: {_ALIASES[field][0]}.",
                               code="parameter_missing", param=_ALIASES[field][0])
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PaymentError(f"Invalid value for {_ALIASES[field][0]}.",
                           param=_ALIASES[field][0])
    return str(value)


def _create_method(conn: sa.Connection, params: Mapping[str, object], fingerprint_key: bytes
                   ) -> SandboxMethod:
    billing = BillingDetails(
        name=_text(params, "name", required=False), line1=_text(params, "line1", required=False),
        city=_text(params, "city", required=False), state=_text(params, "state", required=False),
        country=_text(params, "country", required=False))
    number = _text(params, "number", required=True) or ""
    exp_month = _text(params, "exp_month", required=True)
    exp_year = _text(params, "exp_year", required=True)
    cvc = _text(params, "cvc", required=True) or ""
    method_id = tokenize(conn, number, exp_month, exp_year, cvc,
                         _text(params, "postal_code", required=False), billing,
                         fingerprint_key=fingerprint_key)
    return load_method(conn, method_id)


def payment_method_object(method: SandboxMethod) -> dict[str, Any]:
    """The method as Stripe's PaymentMethod object."""
    card, billing = method.card, method.billing
    return {
        "id": method.id, "object": "payment_method", "type": "card",
        "card": {"brand": card.brand, "last4": card.last4, "exp_month": card.exp_month,
                 "exp_year": card.exp_year, "fingerprint": card.fingerprint,
                 "country": card.country},
        "billing_details": {
            "name": billing.name, "email": None, "phone": None,
            "address": {"line1": billing.line1, "line2": None, "city": billing.city,
                        "state": billing.state, "postal_code": billing.postal_code,
                        "country": billing.country}},
        "customer": method.customer_id, "livemode": False,
    }


def _authenticate(conn: sa.Connection, payment_id: str, params: Mapping[str, object],
                  secret: bytes) -> dict[str, Any]:
    given = params.get("client_secret")
    if not isinstance(given, str) or not client_secret_ok(secret, payment_id, given):
        # Stripe answers a wrong client secret as if the PaymentIntent did not exist.
        raise missing("payment_intent", payment_id, "intent")
    outcome = params.get("authentication", "complete")
    if outcome not in ("complete", "fail"):
        raise PaymentError("authentication must be complete or fail.", param="authentication")
    payment = intents.authenticate(conn, payment_id=payment_id,
                                   authenticated=outcome == "complete")
    return payment_intent_object(payment)


_WALLET_NAMES = {"alipay": "Alipay", "wechat_pay": "WeChat Pay"}
_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{title}</title><meta name="viewport" content="width=device-width, initial-scale=1">
</head><body style="font-family: sans-serif; max-width: 32rem; margin: 3rem auto">
<p><strong>Sandbox — simulated payment, no money moves.</strong></p><h1>{title}</h1>{body}
</body></html>"""


def _wallet_page(conn: sa.Connection, payment_id: str, given: str | None,
                 secret: bytes) -> SandboxPayment:
    if given is None or not client_secret_ok(secret, payment_id, given):
        raise missing("payment_intent", payment_id, "intent")
    payment = load_payment(conn, payment_id)
    if payment.method_id not in _WALLET_NAMES:
        raise missing("payment_intent", payment_id, "intent")
    return payment


def _back_link(return_url: object) -> str:
    """A link (never an automatic redirect) back to where the payment started."""
    if not isinstance(return_url, str) or not return_url.startswith(("https://", "http://",
                                                                      "/")):
        return ""
    return f'<p><a href="{html.escape(return_url)}">Return to the merchant</a></p>'


def wallet_page_html(payment: SandboxPayment, client_secret: str, return_url: str | None
                     ) -> str:
    name = _WALLET_NAMES[str(payment.method_id)]
    amount = f"{payment.amount_minor // 100}.{payment.amount_minor % 100:02d}"
    title = f"{name}: pay {amount} {payment.currency.upper()}"
    if payment.status != "requires_action":
        return _PAGE.format(title=html.escape(title), body=f"<p>This payment is "
                            f"{html.escape(payment.status)}.</p>{_back_link(return_url)}")
    hidden = (f'<input type="hidden" name="client_secret" value="{html.escape(client_secret)}">'
              + (f'<input type="hidden" name="return_url" value="{html.escape(return_url)}">'
                 if return_url else ""))
    form = (f'<form method="post">{hidden}<button name="authorization" value="authorize">'
            f'Authorize</button> <button name="authorization" value="decline">Decline</button>'
            "</form>")
    return _PAGE.format(title=html.escape(title), body=form)


def sandbox_router(db: Database, *, webhook_secret: bytes | None = None,
                   fingerprint_key: bytes = FINGERPRINT_KEY) -> APIRouter:
    """The router to mount at /sandbox/v1. Give it the processor's `webhook_secret` to serve
    the authentication endpoint (client secrets are derived from it)."""
    router = APIRouter(route_class=_StripeErrors, tags=["sandbox"])

    @router.post("/payment_methods")
    async def create_payment_method(request: Request) -> JSONResponse:
        params = await read_params(request)
        method = await db.run(_create_method, params, fingerprint_key)
        return JSONResponse(payment_method_object(method))

    if webhook_secret:
        secret = webhook_secret

        @router.post("/payment_intents/{payment_id}/confirm")
        async def confirm_payment_intent(payment_id: str, request: Request) -> JSONResponse:
            params = await read_params(request)
            body = await db.run(functools.partial(_authenticate, payment_id=payment_id,
                                                  params=params, secret=secret))
            return JSONResponse(body)

        @router.get("/wallet_payments/{payment_id}")
        async def wallet_payment_page(payment_id: str, request: Request) -> HTMLResponse:
            given = request.query_params.get("client_secret")
            back = request.query_params.get("return_url")
            payment = await db.run(_wallet_page, payment_id, given, secret)
            return HTMLResponse(wallet_page_html(payment, given or "", back),
                                headers={"cache-control": "no-store"})

        @router.post("/wallet_payments/{payment_id}")
        async def authorize_wallet_payment(payment_id: str, request: Request) -> HTMLResponse:
            params = await read_params(request)
            given = params.get("client_secret")
            back = params.get("return_url")
            authorized = params.get("authorization") == "authorize"

            def run(conn: sa.Connection) -> SandboxPayment:
                _wallet_page(conn, payment_id, given if isinstance(given, str) else None,
                             secret)
                return intents.authenticate(conn, payment_id=payment_id,
                                            authenticated=authorized)
            payment = await db.run(run)
            return HTMLResponse(wallet_page_html(
                payment, "", back if isinstance(back, str) else None),
                headers={"cache-control": "no-store"})

    return router
