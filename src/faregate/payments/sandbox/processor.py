"""SandboxProcessor: the PaymentProcessor that plays Stripe's test mode offline. Its state is
in the database (sandbox_* tables), so every server process sees the same customers, methods
and payments."""

from __future__ import annotations

import functools
from dataclasses import replace
from urllib.parse import urlencode

from faregate.db.runner import Database
from faregate.payments.processor import (
    WALLETS,
    Charge,
    NextAction,
    Refund,
    SavedMethod,
    Wallet,
    WebhookEvent,
    WebhookSignatureError,
)
from faregate.payments.sandbox import intents, methods
from faregate.payments.sandbox.store import (
    VERIFICATION,
    SandboxPayment,
    client_secret,
    find_payment,
    load_payment,
)
from faregate.payments.sandbox.webhooks import (
    ParsedEvent,
    event_payload,
    parse_event,
    sign_payload,
    status_from_object,
    verify_signature,
)


class SandboxProcessor:
    """Stripe's test mode, embedded. See the package docstring for the semantics."""

    name = "sandbox"
    simulated = True

    def __init__(self, db: Database, *, webhook_secret: bytes) -> None:
        if not webhook_secret:
            raise ValueError("the sandbox needs a webhook secret")
        self._db = db
        self._secret = webhook_secret

    def _charge(self, payment: SandboxPayment, return_url: str | None = None) -> Charge:
        secret = client_secret(self._secret, payment.id) if payment.awaits_customer else None
        charge = payment.charge(secret)
        if secret is not None and payment.method_id in WALLETS:
            charge = replace(charge, next_action=wallet_action(payment, secret, return_url))
        return charge

    async def create_customer(self, *, organization_id: str, email: str | None) -> str:
        return await self._db.run(functools.partial(
            methods.create_customer, reference=organization_id, email=email))

    async def attach_method(self, *, customer_id: str, method_id: str) -> SavedMethod:
        return await self._db.run(functools.partial(
            methods.attach_method, customer_id=customer_id, method_id=method_id))

    async def detach_method(self, *, method_id: str) -> None:
        await self._db.run(functools.partial(methods.detach_method, method_id=method_id))

    async def verify_card(self, *, customer_id: str, method_id: str, amount_minor: int,
                          currency: str, idempotency_key: str) -> Charge:
        """Status succeeded when the card held the amount (the PaymentIntent itself is then
        canceled: retrieve_payment reports canceled), failed with the decline, or
        requires_action with the client secret the browser authenticates with."""
        payment = await self._db.run(functools.partial(
            intents.verify_card, customer_id=customer_id, method_id=method_id,
            amount_minor=amount_minor, currency=currency, idempotency_key=idempotency_key))
        return verification_result(self._charge(payment))

    async def charge(self, *, customer_id: str, method_id: str, amount_minor: int,
                     currency: str, off_session: bool, idempotency_key: str,
                     description: str) -> Charge:
        payment = await self._db.run(functools.partial(
            intents.charge, customer_id=customer_id, method_id=method_id,
            amount_minor=amount_minor, currency=currency, off_session=off_session,
            idempotency_key=idempotency_key, description=description))
        return self._charge(payment)

    async def start_wallet_payment(self, *, customer_id: str, wallet: Wallet,
                                   amount_minor: int, currency: str, idempotency_key: str,
                                   description: str, return_url: str) -> Charge:
        """requires_action with the sandbox's stand-in for the wallet: a page (at the
        redirect URL, or the URL in the QR code) where the customer authorizes or declines."""
        payment = await self._db.run(functools.partial(
            intents.wallet_payment, customer_id=customer_id, wallet=wallet,
            amount_minor=amount_minor, currency=currency, idempotency_key=idempotency_key,
            description=description, return_url=return_url))
        return self._charge(payment, return_url)

    async def retrieve_payment(self, payment_id: str) -> Charge:
        return self._charge(await self._db.run(intents.retrieve, payment_id))

    async def refund(self, *, payment_id: str, amount_minor: int | None,
                     idempotency_key: str) -> Refund:
        row = await self._db.run(functools.partial(
            intents.refund, payment_id=payment_id, amount_minor=amount_minor,
            idempotency_key=idempotency_key))
        return Refund(refund_id=row.id, payment_id=payment_id, amount_minor=row.amount_minor,
                      status="succeeded")

    async def authenticate(self, *, payment_id: str, authenticated: bool = True) -> Charge:
        """What the customer's browser does for a requires_action payment (Stripe's 3D Secure
        page): complete or fail the authentication. Also served over HTTP by the router."""
        payment = await self._db.run(functools.partial(
            intents.authenticate, payment_id=payment_id, authenticated=authenticated))
        charge = self._charge(payment)
        return verification_result(charge) if payment.capture_method == VERIFICATION else charge

    async def signed_event(self, event_type: str, payment_id: str) -> tuple[bytes, str]:
        """(payload, Stripe-Signature header) of an event about the payment as it is now: what
        the sandbox would POST to the webhook endpoint."""
        payment = await self._db.run(load_payment, payment_id)
        payload = event_payload(event_type, payment)
        return payload, sign_payload(payload, self._secret)

    def verify_webhook(self, payload: bytes, signature_header: str | None) -> WebhookEvent:
        """Check the signature, then read the payment the event names from the sandbox's own
        table: amount, currency, customer and method are the processor's record; status and
        decline come from the signed event. The read is one short indexed query on the calling
        thread; `verify_webhook_async` does it on the database's threads instead."""
        event = self._verified(payload, signature_header)
        if event.payment_id is None:
            return _webhook_event(event, None)
        with self._db.engine.connect() as conn:
            return _webhook_event(event, find_payment(conn, event.payment_id))

    async def verify_webhook_async(self, payload: bytes,
                                   signature_header: str | None) -> WebhookEvent:
        """verify_webhook without a database read on the event loop."""
        event = self._verified(payload, signature_header)
        if event.payment_id is None:
            return _webhook_event(event, None)
        return _webhook_event(event, await self._db.run(find_payment, event.payment_id))

    async def receive_webhook(self, payload: bytes,
                              signature_header: str | None) -> WebhookEvent:
        return await self.verify_webhook_async(payload, signature_header)

    async def aclose(self) -> None:
        """Nothing to release: the sandbox lives in the database."""

    def _verified(self, payload: bytes, signature_header: str | None) -> ParsedEvent:
        verify_signature(payload, signature_header, (self._secret,))
        return parse_event(payload)


def _webhook_event(event: ParsedEvent, record: SandboxPayment | None) -> WebhookEvent:
    if event.payment_id is None:
        return WebhookEvent(event_id=event.event_id, type=event.type)
    if record is None:
        raise WebhookSignatureError("The event is about a payment this sandbox never made")
    error = event.object.get("last_payment_error")
    decline = message = None
    if isinstance(error, dict):
        decline = error.get("decline_code") or error.get("code")
        message = error.get("message")
    charge = Charge(status=status_from_object(event.object),
                    payment_id=record.id, amount_minor=record.amount_minor,
                    currency=record.currency, customer_id=record.customer_id,
                    method_id=record.method_id,
                    decline_code=decline if isinstance(decline, str) else None,
                    message=message if isinstance(message, str) else None)
    refunded = record.refunded_minor if event.type.startswith("charge.") else None
    return WebhookEvent(event_id=event.event_id, type=event.type, payment=charge,
                        refunded_minor=refunded)


WALLET_PAGE = "/sandbox/v1/wallet_payments/{id}"


def wallet_action(payment: SandboxPayment, secret: str, return_url: str | None) -> NextAction:
    """Alipay: a redirect to the sandbox's authorization page; WeChat Pay: a QR code whose
    content is that page (what a phone would open), with no image."""
    query = {"client_secret": secret}
    if return_url:
        query["return_url"] = return_url
    page = f"{WALLET_PAGE.format(id=payment.id)}?{urlencode(query)}"
    if payment.method_id == "alipay":
        return NextAction("redirect", url=page)
    return NextAction("qr_code", url=page, qr_data=page)


def verification_result(charge: Charge) -> Charge:
    """A verification that held the amount reads succeeded, though its PaymentIntent is
    canceled right after (billing treats either as "the card holds the amount")."""
    if charge.status == "canceled" and charge.decline_code is None:
        return replace(charge, status="succeeded")
    return charge
