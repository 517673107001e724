"""StripeProcessor: the PaymentProcessor protocol over Stripe's API (stripe-python, async on
aiohttp)."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import replace
from typing import TypeVar

import aiohttp
import stripe
from stripe.params import CustomerCreateParams, PaymentIntentCreateParams, RefundCreateParams

from faregate.payments.processor import (
    Charge,
    PaymentError,
    Refund,
    SavedMethod,
    Wallet,
    WebhookEvent,
    WebhookSignatureError,
)
from faregate.payments.stripe import mapping
from faregate.payments.stripe.events import event_from

T = TypeVar("T")

WEBHOOK_TOLERANCE_S = 300


class StripeProcessor:
    """Stripe behind the PaymentProcessor protocol. Declines come back as Charges with status
    failed (or requires_action when the customer must authenticate); everything else Stripe
    refuses raises PaymentError. Call `aclose()` when done (it closes the HTTP session)."""

    name = "stripe"
    simulated = False

    def __init__(self, *, api_key: str, webhook_secret: str, api_base: str | None = None,
                 max_network_retries: int = 2, timeout_s: float = 30.0) -> None:
        if not api_key or not webhook_secret:
            raise ValueError("StripeProcessor needs an API key and a webhook signing secret")
        self._api_base = api_base
        self._webhook_secret = webhook_secret
        self._http = stripe.AIOHTTPClient(timeout=aiohttp.ClientTimeout(total=timeout_s))
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            http_client=self._http,
            max_network_retries=max_network_retries,
        )

    def __repr__(self) -> str:
        return f"StripeProcessor(api_base={self._api_base!r})"  # never the key

    async def aclose(self) -> None:
        # stripe-python leaves close_async unannotated.
        await self._http.close_async()  # type: ignore[no-untyped-call]

    async def create_customer(self, *, organization_id: str, email: str | None) -> str:
        params: CustomerCreateParams = {"metadata": {"organization_id": organization_id}}
        if email:
            params["email"] = email
        customer = await _request(self._client.v1.customers.create_async(params))
        return customer.id

    async def attach_method(self, *, customer_id: str, method_id: str) -> SavedMethod:
        method = await _request(self._client.v1.payment_methods.attach_async(
            method_id, {"customer": customer_id}))
        try:
            return mapping.saved_method(method, customer_id)
        except PaymentError:
            await self.detach_method(method_id=method_id)
            raise

    async def detach_method(self, *, method_id: str) -> None:
        await _request(self._client.v1.payment_methods.detach_async(method_id))

    async def verify_card(self, *, customer_id: str, method_id: str, amount_minor: int,
                          currency: str, idempotency_key: str) -> Charge:
        """Authorize with manual capture, then cancel: status succeeded means the card could
        hold the amount and the hold is already released."""
        intent, outcome = await self._confirm(
            {"amount": amount_minor, "currency": currency, "customer": customer_id,
             "payment_method": method_id, "allowed_payment_method_types": ["card"],
             "capture_method": "manual", "confirm": True},
            idempotency_key, off_session=False)
        if intent is None or intent.status != "requires_capture":
            return outcome
        await self.cancel_payment(intent.id, idempotency_key=f"{idempotency_key}:cancel")
        return replace(outcome, status="succeeded")

    async def charge(self, *, customer_id: str, method_id: str, amount_minor: int,
                     currency: str, off_session: bool, idempotency_key: str,
                     description: str) -> Charge:
        _, outcome = await self._confirm(
            {"amount": amount_minor, "currency": currency, "customer": customer_id,
             "payment_method": method_id, "allowed_payment_method_types": ["card"],
             "confirm": True, "off_session": off_session, "description": description},
            idempotency_key, off_session=off_session)
        return outcome

    async def start_wallet_payment(self, *, customer_id: str, wallet: Wallet,
                                   amount_minor: int, currency: str, idempotency_key: str,
                                   description: str, return_url: str) -> Charge:
        """A PaymentIntent confirmed with a new Alipay or WeChat Pay method: requires_action
        with Alipay's redirect (back to `return_url`) or WeChat Pay's QR code for the web."""
        params: PaymentIntentCreateParams = {
            "amount": amount_minor, "currency": currency, "customer": customer_id,
            "allowed_payment_method_types": [wallet], "payment_method_data": {"type": wallet},
            "confirm": True, "description": description}
        if wallet == "alipay":
            params["return_url"] = return_url
        else:
            params["payment_method_options"] = {"wechat_pay": {"client": "web"}}
        _, outcome = await self._confirm(params, idempotency_key, off_session=False)
        return outcome

    async def cancel_payment(self, payment_id: str, *, idempotency_key: str) -> Charge:
        """Cancel an intent that is not final (a verification that needed authentication and
        now holds an authorization, or a charge the customer will not complete)."""
        intent = await _request(self._client.v1.payment_intents.cancel_async(
            payment_id, None, {"idempotency_key": idempotency_key}))
        return mapping.charge_from_intent(intent)

    async def retrieve_payment(self, payment_id: str) -> Charge:
        intent = await _request(self._client.v1.payment_intents.retrieve_async(payment_id))
        return mapping.charge_from_intent(intent)

    async def refund(self, *, payment_id: str, amount_minor: int | None,
                     idempotency_key: str) -> Refund:
        params: RefundCreateParams = {"payment_intent": payment_id}
        if amount_minor is not None:
            params["amount"] = amount_minor
        refund = await _request(self._client.v1.refunds.create_async(
            params, {"idempotency_key": idempotency_key}))
        return mapping.refund_from(refund, payment_id)

    def verify_webhook(self, payload: bytes, signature_header: str | None) -> WebhookEvent:
        """Stripe's signature check (v1 scheme, 5-minute tolerance for old timestamps); the
        event's payment is the signed snapshot. `refresh_event` re-reads it from Stripe."""
        try:
            event = self._client.construct_event(payload, signature_header,
                                                 self._webhook_secret, WEBHOOK_TOLERANCE_S)
        except stripe.SignatureVerificationError as err:
            raise WebhookSignatureError(err.user_message or "bad signature") from err
        except ValueError as err:  # signed, but not a JSON event
            raise WebhookSignatureError("the webhook body is not a Stripe event") from err
        return event_from(event)

    async def receive_webhook(self, payload: bytes,
                              signature_header: str | None) -> WebhookEvent:
        return await self.refresh_event(self.verify_webhook(payload, signature_header))

    async def refresh_event(self, event: WebhookEvent) -> WebhookEvent:
        """The event with its payment as Stripe reports it now rather than as the snapshot
        had it (events arrive late and out of order); for charge.refunded, the refund total
        too."""
        if event.payment is None or event.payment.payment_id is None:
            return event
        intent = await _request(self._client.v1.payment_intents.retrieve_async(
            event.payment.payment_id, {"expand": ["latest_charge"]}))
        refunded = event.refunded_minor
        if event.type == "charge.refunded" and isinstance(intent.latest_charge, stripe.Charge):
            refunded = intent.latest_charge.amount_refunded
        return replace(event, payment=mapping.charge_from_intent(intent),
                       refunded_minor=refunded)

    async def _confirm(self, params: PaymentIntentCreateParams, idempotency_key: str, *,
                       off_session: bool) -> tuple[stripe.PaymentIntent | None, Charge]:
        """Create and confirm an intent; a decline is an outcome, not an exception."""
        try:
            intent = await self._client.v1.payment_intents.create_async(
                params, {"idempotency_key": idempotency_key})
        except stripe.CardError as err:
            return None, mapping.charge_from_card_error(
                err, payment_id=await self._declined_intent_id(err),
                amount_minor=params["amount"], currency=params["currency"],
                customer_id=params.get("customer"), method_id=params.get("payment_method"))
        except stripe.StripeError as err:
            raise mapping.payment_error(err) from err
        return intent, mapping.charge_from_intent(intent, off_session=off_session)

    async def _declined_intent_id(self, err: stripe.CardError) -> str | None:
        """Stripe names the declined intent in the error; when only the charge is named
        (localstripe), the charge knows its intent."""
        intent_id = mapping.declined_intent_id(err)
        charge_id = mapping.declined_charge_id(err)
        if intent_id is not None or charge_id is None:
            return intent_id
        try:
            charge = await self._client.v1.charges.retrieve_async(charge_id)
        except stripe.StripeError:
            return None  # the decline stands without it
        return mapping.object_id(charge.payment_intent)


async def _request(call: Awaitable[T]) -> T:
    try:
        return await call
    except stripe.StripeError as err:
        raise mapping.payment_error(err) from err
