"""The Stripe processor's Alipay and WeChat Pay payments, through the real stripe SDK over HTTP
to the loopback "Stripe edge" of test_stripe_processor.py. localstripe knows neither wallet
(it refuses `payment_method_data`), so the edge answers with Stripe-shaped PaymentIntents and
the tests check the request the SDK actually sent and how Stripe's answers read back. The
whole flow through the server is tested with the sandbox (tests/e2e/test_wallet_top_ups.py)."""

from __future__ import annotations

from typing import Any

import pytest

from faregate.payments.processor import NextAction, PaymentError
from faregate.payments.stripe import StripeProcessor
from tests.payments import test_stripe_processor as base
from tests.payments.test_stripe_processor import StripeEdge, aio, stripe_intent

# The same module-scoped fixtures: localstripe, the edge in front of it, the processor.
localstripe_url = base.localstripe_url
edge = base.edge
processor = base.processor

BACK = "https://faregate.example/billing?top_up=ch_1"


def _pending(**fields: Any) -> dict[str, Any]:
    return stripe_intent(status="requires_action", latest_charge=None, **fields)


@aio
async def test_alipay_asks_for_the_redirect(processor: StripeProcessor,
                                            edge: StripeEdge) -> None:
    redirect = "https://hooks.stripe.com/redirect/authenticate/src_1Ali?client_secret=x"
    intent = _pending(id="pi_3Ali", payment_method="pm_3Ali", next_action={
        "type": "alipay_handle_redirect", "alipay_handle_redirect": {
            "url": redirect, "native_url": None, "native_data": None, "return_url": BACK}})
    edge.inject("POST", "/v1/payment_intents", 200, intent)
    charge = await processor.start_wallet_payment(
        customer_id="cus_Stripe", wallet="alipay", amount_minor=1000, currency="usd",
        idempotency_key="k-ali", description="Faregate credit (topup)", return_url=BACK)
    sent = edge.posts("/v1/payment_intents")[-1]
    assert sent.idempotency_key == "k-ali"
    assert sent.form == {
        "amount": "1000", "currency": "usd", "customer": "cus_Stripe",
        "allowed_payment_method_types[0]": "alipay", "payment_method_data[type]": "alipay",
        "confirm": "true", "description": "Faregate credit (topup)", "return_url": BACK}
    assert (charge.status, charge.payment_id) == ("requires_action", "pi_3Ali")
    assert charge.next_action == NextAction("redirect", url=redirect)
    assert charge.customer_id == "cus_Stripe" and charge.amount_minor == 1500

    # Authorized in Alipay: Stripe reports it succeeded, with no next action.
    edge.inject("GET", "/v1/payment_intents/pi_3Ali", 200,
                {**intent, "status": "succeeded", "next_action": None})
    done = await processor.retrieve_payment("pi_3Ali")
    assert (done.status, done.next_action, done.client_secret) == ("succeeded", None, None)


@aio
async def test_a_generic_redirect_reads_the_same(processor: StripeProcessor,
                                                 edge: StripeEdge) -> None:
    edge.inject("GET", "/v1/payment_intents/pi_3Old", 200, _pending(
        id="pi_3Old", next_action={"type": "redirect_to_url", "redirect_to_url": {
            "url": "https://stripe.example/r", "return_url": BACK}}))
    got = await processor.retrieve_payment("pi_3Old")
    assert got.next_action == NextAction("redirect", url="https://stripe.example/r")


@aio
async def test_wechat_pay_shows_a_qr_code(processor: StripeProcessor,
                                          edge: StripeEdge) -> None:
    qr = {"data": "weixin://wxpay/bizpayurl?pr=abc", "hosted_instructions_url":
          "https://pay.stripe.com/wechat/instructions/x", "image_data_url":
          "data:image/png;base64,iVBOR", "image_url_png": "https://qr.stripe.com/x.png",
          "image_url_svg": "https://qr.stripe.com/x.svg"}
    edge.inject("POST", "/v1/payment_intents", 200, _pending(
        id="pi_3We", next_action={"type": "wechat_pay_display_qr_code",
                                  "wechat_pay_display_qr_code": qr}))
    charge = await processor.start_wallet_payment(
        customer_id="cus_Stripe", wallet="wechat_pay", amount_minor=550, currency="usd",
        idempotency_key="k-we", description="Faregate credit (topup)", return_url=BACK)
    sent = edge.posts("/v1/payment_intents")[-1]
    assert sent.form == {
        "amount": "550", "currency": "usd", "customer": "cus_Stripe",
        "allowed_payment_method_types[0]": "wechat_pay",
        "payment_method_data[type]": "wechat_pay",
        "payment_method_options[wechat_pay][client]": "web", "confirm": "true",
        "description": "Faregate credit (topup)"}
    assert charge.status == "requires_action"
    assert charge.next_action == NextAction(
        "qr_code", url=qr["hosted_instructions_url"], qr_data=qr["data"],
        qr_image_url=qr["image_url_png"])


@aio
async def test_a_wallet_not_activated_is_refused(processor: StripeProcessor,
                                                 edge: StripeEdge) -> None:
    edge.inject("POST", "/v1/payment_intents", 400, {"error": {
        "type": "invalid_request_error", "code": "payment_intent_invalid_parameter",
        "param": "payment_method_data[type]",
        "message": 'The payment method type "alipay" is invalid. Please ensure the provided '
                   "type is activated in your dashboard."}})
    with pytest.raises(PaymentError) as raised:
        await processor.start_wallet_payment(
            customer_id="cus_Stripe", wallet="alipay", amount_minor=1000, currency="usd",
            idempotency_key="k-off", description="Faregate credit (topup)", return_url=BACK)
    assert raised.value.code == "payment_intent_invalid_parameter"
    assert not raised.value.retryable and "activated" in raised.value.message
