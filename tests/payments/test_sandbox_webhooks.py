"""Webhook signatures (Stripe's scheme) and events, signed and verified."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy.engine import Engine

from faregate.payments.processor import WebhookSignatureError
from faregate.payments.sandbox import SandboxProcessor, event_payload, sign_payload
from faregate.payments.sandbox.webhooks import verify_signature
from tests.payments.conftest import WEBHOOK_SECRET, new_method

# reference/openai-stripe-contracts.md section 6.7 (computed with Python's hmac).
VECTOR_SECRET = b"whsec_test_secret"
VECTOR_PAYLOAD = b'{"id":"evt_test","object":"event","type":"payment_intent.succeeded"}'
VECTOR_HEADER = ("t=1700000000,"
                 "v1=f457ee3d89f52f9f02936e1cd1173dd5dfa132cdc78ec55ea964a53098c5a1c0")


def test_sign_payload_matches_the_reference_vector() -> None:
    assert sign_payload(VECTOR_PAYLOAD, VECTOR_SECRET, 1700000000) == VECTOR_HEADER
    assert verify_signature(VECTOR_PAYLOAD, VECTOR_HEADER, [VECTOR_SECRET],
                            now=1700000000 + 10) == 1700000000
    now = int(time.time())
    assert sign_payload(b"x", b"s").startswith(f"t={now}") or \
        sign_payload(b"x", b"s").startswith(f"t={now + 1}")


def refused(payload: bytes, header: str | None, *, secrets: tuple[bytes, ...] = (b"s",),
            now: float | None = None) -> str:
    with pytest.raises(WebhookSignatureError) as info:
        verify_signature(payload, header, secrets, now=now)
    return str(info.value)


def test_signature_refusals() -> None:
    payload = b'{"id":"evt_1"}'
    t = int(time.time())
    good = sign_payload(payload, b"s", t)
    assert verify_signature(payload, good, [b"s"]) == t
    assert "header" in refused(payload, None)
    assert "header" in refused(payload, "")
    assert "timestamp" in refused(payload, good.split(",")[1])  # no t=
    assert "timestamp" in refused(payload, "t=abc," + good.split(",")[1])
    assert "scheme v1" in refused(payload, f"t={t}")
    assert "scheme v1" in refused(payload, good.replace("v1=", "v0="))  # other schemes ignored
    assert "expected signature" in refused(payload, good, secrets=(b"other",))
    assert "expected signature" in refused(payload + b" ", good)  # tampered payload
    assert "expected signature" in refused(b'{"id":"evt_2"}', good)
    sig = good.split("v1=")[1]
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    assert "expected signature" in refused(payload, f"t={t},v1={flipped}")
    assert "expected signature" in refused(payload, f"t={t + 1},v1={sig}")  # timestamp signed


def test_tolerance_is_300_seconds_for_old_timestamps_only() -> None:
    payload = b"{}"
    t = 1_800_000_000
    header = sign_payload(payload, b"s", t)
    assert verify_signature(payload, header, [b"s"], now=t + 300) == t
    assert "tolerance" in refused(payload, header, now=t + 301)
    assert verify_signature(payload, header, [b"s"], now=t - 3600) == t  # future: accepted
    # A stale timestamp with a bad signature is reported as a bad signature.
    assert "expected signature" in refused(payload, header, secrets=(b"x",), now=t + 999)


def test_any_of_several_v1_signatures_and_secrets() -> None:
    payload = b'{"a":1}'
    t = int(time.time())
    old = sign_payload(payload, b"old", t).split("v1=")[1]
    new = sign_payload(payload, b"new", t).split("v1=")[1]
    header = f"t={t},v1={'0' * 64},v1={old},v0={new}"
    assert verify_signature(payload, header, [b"old"]) == t
    assert "expected signature" in refused(payload, header, secrets=(b"new",))  # v0 ignored
    assert verify_signature(payload, f"t={t}, v1={new}", [b"old", b"new"]) == t


async def test_events_verified_and_reread_from_the_sandbox(processor: SandboxProcessor,
                                                           engine: Engine) -> None:
    cus = await processor.create_customer(organization_id="org", email=None)
    pm = new_method(engine, "4242424242424242")
    await processor.attach_method(customer_id=cus, method_id=pm)
    paid = await processor.charge(customer_id=cus, method_id=pm, amount_minor=500,
                                  currency="usd", off_session=True, idempotency_key="w1",
                                  description="top-up")
    payload, header = await processor.signed_event("payment_intent.succeeded",
                                                   paid.payment_id or "")
    event = json.loads(payload)
    assert event["object"] == "event" and event["id"].startswith("evt_")
    obj = event["data"]["object"]
    assert {k: obj[k] for k in ("id", "object", "amount", "amount_received", "currency",
                                "customer", "payment_method", "status",
                                "last_payment_error")} == {
        "id": paid.payment_id, "object": "payment_intent", "amount": 500,
        "amount_received": 500, "currency": "usd", "customer": cus, "payment_method": pm,
        "status": "succeeded", "last_payment_error": None}
    verified = processor.verify_webhook(payload, header)
    assert (verified.event_id, verified.type) == (event["id"], "payment_intent.succeeded")
    assert verified.payment == paid
    assert await processor.verify_webhook_async(payload, header) == verified
    # A re-signed payload that lies about the amount still gets the processor's record.
    obj["amount"] = 50_000
    obj["customer"] = "cus_attacker"
    forged = json.dumps(event).encode()
    from_record = processor.verify_webhook(forged, sign_payload(forged, WEBHOOK_SECRET))
    assert from_record.payment is not None
    assert (from_record.payment.amount_minor, from_record.payment.customer_id) == (500, cus)
    # Tampered, badly signed, stale: refused.
    with pytest.raises(WebhookSignatureError):
        processor.verify_webhook(forged, header)
    with pytest.raises(WebhookSignatureError):
        processor.verify_webhook(payload, sign_payload(payload, b"whsec_other"))
    with pytest.raises(WebhookSignatureError):
        processor.verify_webhook(payload, sign_payload(payload, WEBHOOK_SECRET,
                                                       int(time.time()) - 301))
    with pytest.raises(WebhookSignatureError):
        processor.verify_webhook(payload, None)
    # A signed event about a payment this sandbox never made.
    obj["id"] = "pi_unknown"
    alien = json.dumps(event).encode()
    with pytest.raises(WebhookSignatureError):
        processor.verify_webhook(alien, sign_payload(alien, WEBHOOK_SECRET))
    with pytest.raises(WebhookSignatureError):
        await processor.verify_webhook_async(alien, sign_payload(alien, WEBHOOK_SECRET))
    with pytest.raises(WebhookSignatureError):
        await processor.verify_webhook_async(payload, sign_payload(payload, b"whsec_other"))
    # An event about no payment (e.g. customer.created) verifies without one.
    other = json.dumps({"id": "evt_c", "object": "event", "type": "customer.created",
                        "data": {"object": {"id": cus, "object": "customer"}}}).encode()
    plain = processor.verify_webhook(other, sign_payload(other, WEBHOOK_SECRET))
    assert (plain.event_id, plain.type, plain.payment) == ("evt_c", "customer.created", None)
    # A signed payload that is not an event.
    with pytest.raises(WebhookSignatureError):
        processor.verify_webhook(b"[]", sign_payload(b"[]", WEBHOOK_SECRET))


async def test_failure_and_refund_events(processor: SandboxProcessor, engine: Engine) -> None:
    cus = await processor.create_customer(organization_id="org", email=None)
    pm = new_method(engine, "4000000000009995")
    failed = await processor.charge(customer_id=cus, method_id=pm, amount_minor=900,
                                    currency="usd", off_session=False, idempotency_key="w2",
                                    description="top-up")
    payload, header = await processor.signed_event("payment_intent.payment_failed",
                                                   failed.payment_id or "")
    obj = json.loads(payload)["data"]["object"]
    assert (obj["status"], obj["amount_received"]) == ("requires_payment_method", 0)
    assert obj["last_payment_error"] == {
        "type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
        "message": "Your card has insufficient funds."}
    event = processor.verify_webhook(payload, header)
    assert event.payment == failed

    ok_pm = new_method(engine, "5555555555554444")
    await processor.attach_method(customer_id=cus, method_id=ok_pm)
    paid = await processor.charge(customer_id=cus, method_id=ok_pm, amount_minor=900,
                                  currency="usd", off_session=True, idempotency_key="w3",
                                  description="top-up")
    await processor.refund(payment_id=paid.payment_id or "", amount_minor=400,
                           idempotency_key="w4")
    payload, header = await processor.signed_event("charge.refunded", paid.payment_id or "")
    obj = json.loads(payload)["data"]["object"]
    assert (obj["object"], obj["payment_intent"], obj["amount_refunded"], obj["refunded"]) == \
        ("charge", paid.payment_id, 400, False)
    refunded = processor.verify_webhook(payload, header)
    assert refunded.refunded_minor == 400
    assert refunded.payment is not None and refunded.payment.payment_id == paid.payment_id


def test_event_payload_shape_without_a_database() -> None:
    import datetime as dt

    from faregate.payments.sandbox.store import SandboxPayment
    payment = SandboxPayment(id="pi_1", customer_id="cus_1", method_id="pm_1", amount_minor=500,
                             currency="usd", status="requires_action", capture_method="manual",
                             off_session=False, decline_code=None, message=None,
                             refunded_minor=0, created_at=dt.datetime.now(dt.UTC))
    event = json.loads(event_payload("payment_intent.requires_action", payment,
                                     event_id="evt_x", created=5))
    assert (event["id"], event["created"], event["type"]) == \
        ("evt_x", 5, "payment_intent.requires_action")
    assert event["data"]["object"]["capture_method"] == "manual"
    assert event["data"]["object"]["status"] == "requires_action"


async def test_event_payload_takes_a_table_row(processor: SandboxProcessor,
                                               engine: Engine) -> None:
    import sqlalchemy as sa

    from faregate.db.schema import sandbox_payments
    cus = await processor.create_customer(organization_id="org", email=None)
    pm = new_method(engine, "4242424242424242")
    paid = await processor.charge(customer_id=cus, method_id=pm, amount_minor=2000,
                                  currency="usd", off_session=False, idempotency_key="w9",
                                  description="top-up")
    with engine.connect() as conn:
        row = conn.execute(sa.select(sandbox_payments)).one()
    for given in (row, row._mapping):
        payload = event_payload("payment_intent.succeeded", given)
        assert b'"amount": 2000' in payload  # indented, as Stripe sends it
        event = processor.verify_webhook(payload, sign_payload(payload, WEBHOOK_SECRET))
        assert event.payment == paid
