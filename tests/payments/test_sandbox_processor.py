"""SandboxProcessor against a real database (SQLite and PostgreSQL): tokenization, attach
rules, every test card's outcome, authentication, idempotency, refunds."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from faregate.db.schema import sandbox_payment_methods, sandbox_payments
from faregate.payments.processor import (
    BillingDetails,
    Charge,
    PaymentError,
    PaymentProcessor,
)
from faregate.payments.sandbox import SandboxProcessor, intents, store, tokenize
from faregate.payments.sandbox.tokens import FINGERPRINT_KEY
from tests.payments.conftest import BILLING, EXP_YEAR, new_method

SUCCEED = ["4242424242424242", "5555555555554444", "2223003122003222", "5200828282828210",
           "5105105105105100", "378282246310005", "371449635398431", "6011111111111117",
           "6200000000000005", "6200000000000047", "6205500000000000004", "3566002020360505",
           "3056930009020004", "36227206271667"]
DECLINES = {  # number -> (code, decline_code, Charge.decline_code)
    "4000000000000002": ("card_declined", "generic_decline", "generic_decline"),
    "4000000000009995": ("card_declined", "insufficient_funds", "insufficient_funds"),
    "4000000000009987": ("card_declined", "lost_card", "lost_card"),
    "4000000000009979": ("card_declined", "stolen_card", "stolen_card"),
    "4000000000000069": ("expired_card", None, "expired_card"),
    "4000000000000127": ("incorrect_cvc", None, "incorrect_cvc"),
    "4000000000000119": ("processing_error", None, "processing_error"),
    "4000000000006975": ("card_declined", "card_velocity_exceeded", "card_velocity_exceeded"),
}
_keys = iter(range(10**9))


def key() -> str:
    return f"idem-{next(_keys)}"


async def customer(processor: SandboxProcessor) -> str:
    return await processor.create_customer(organization_id="org_1", email="a@example.com")


async def saved(processor: SandboxProcessor, engine: Engine, number: str) -> tuple[str, str]:
    cus = await customer(processor)
    pm = new_method(engine, number)
    await processor.attach_method(customer_id=cus, method_id=pm)
    return cus, pm


async def charge(processor: SandboxProcessor, cus: str, pm: str, *, off_session: bool = True,
                 amount: int = 500, idem: str | None = None, description: str = "top-up"
                 ) -> Charge:
    return await processor.charge(customer_id=cus, method_id=pm, amount_minor=amount,
                                  currency="usd", off_session=off_session,
                                  idempotency_key=key() if idem is None else idem,
                                  description=description)


def pid(charge: Charge) -> str:
    assert charge.payment_id is not None
    return charge.payment_id


def payment_rows(engine: Engine) -> list[sa.RowMapping]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(sandbox_payments)).mappings())


def test_is_a_payment_processor(processor: SandboxProcessor) -> None:
    p: PaymentProcessor = processor
    assert (p.name, p.simulated) == ("sandbox", True)
    with pytest.raises(ValueError, match="webhook secret"):
        SandboxProcessor(processor._db, webhook_secret=b"")


def test_tokenize_stores_the_card_details_but_not_the_number(engine: Engine) -> None:
    pm = new_method(engine, "378282246310005")
    with engine.connect() as conn:
        row = conn.execute(sa.select(sandbox_payment_methods)).mappings().one()
    assert pm.startswith("pm_") and row["id"] == pm
    assert (row["brand"], row["last4"], row["exp_month"], row["exp_year"], row["country"],
            row["behavior"], row["customer_id"]) == \
        ("amex", "0005", 12, EXP_YEAR, "US", "succeed", None)
    assert json.loads(row["billing"]) == {"name": "Ada Lovelace", "line1": "1 Main St",
                                          "city": "Springfield", "state": "IL",
                                          "postal_code": "62701", "country": "US"}
    # The same card gives the same fingerprint, another card another.
    again = new_method(engine, "378282246310005")
    other = new_method(engine, "371449635398431")
    with engine.connect() as conn:
        prints = dict(conn.execute(sa.select(sandbox_payment_methods.c.id,
                                             sandbox_payment_methods.c.fingerprint)).all())
    assert prints[pm] == prints[again] != prints[other]


def test_tokenize_refuses_bad_data_and_real_cards_and_stores_nothing(engine: Engine) -> None:
    cases = [("4242424242424241", 12, EXP_YEAR, "123", "1", "incorrect_number"),
             ("4242424242424242", 13, EXP_YEAR, "123", "1", "invalid_expiry_month"),
             ("4242424242424242", 12, 95, "123", "1", "invalid_expiry_year"),
             ("4242424242424242", 12, EXP_YEAR, "99", "1", "invalid_cvc"),
             ("378282246310005", 12, EXP_YEAR, "123", "1", "invalid_cvc"),
             ("4242424242424242", 12, EXP_YEAR, "123", "", "incomplete_zip"),
             ("4111111111111111", 12, EXP_YEAR, "123", "1", "card_declined")]
    for number, month, year, cvc, postal, code in cases:
        with pytest.raises(PaymentError) as info, engine.begin() as conn:
            tokenize(conn, number, month, year, cvc, postal, BILLING)
        assert info.value.code == code
    with pytest.raises(PaymentError) as info, engine.begin() as conn:
        tokenize(conn, "4242424242424242", 12, EXP_YEAR, "123", "1",
                 BillingDetails(name="x" * 201))
    assert info.value.param == "billing_details[name]"
    today = dt.datetime.now(dt.UTC).date()
    with engine.begin() as conn:
        assert tokenize(conn, "4242424242424242", today.month, today.year, "123", "1",
                        BillingDetails(), fingerprint_key=FINGERPRINT_KEY)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(
            sandbox_payment_methods)).scalar_one() == 1


@pytest.mark.parametrize("number", SUCCEED)
async def test_success_cards(processor: SandboxProcessor, engine: Engine, number: str) -> None:
    cus, pm = await saved(processor, engine, number)
    verified = await processor.verify_card(customer_id=cus, method_id=pm, amount_minor=100,
                                           currency="usd", idempotency_key=key())
    assert verified.status == "succeeded" and verified.decline_code is None
    for off in (False, True):
        result = await charge(processor, cus, pm, off_session=off, amount=1234)
        assert result.status == "succeeded"
        assert result.amount_minor == 1234


@pytest.mark.parametrize(("number", "expected"), list(DECLINES.items()))
async def test_decline_cards_cannot_be_attached_and_fail_every_attempt(
        processor: SandboxProcessor, engine: Engine, number: str,
        expected: tuple[str, str | None, str]) -> None:
    code, decline_code, reason = expected
    cus = await customer(processor)
    pm = new_method(engine, number)
    with pytest.raises(PaymentError) as info:
        await processor.attach_method(customer_id=cus, method_id=pm)
    assert (info.value.code, info.value.decline_code) == (code, decline_code)
    assert info.value.message
    # Charged without being saved (a one-off payment), the issuer declines it.
    verified = await processor.verify_card(customer_id=cus, method_id=pm, amount_minor=100,
                                           currency="usd", idempotency_key=key())
    assert (verified.status, verified.decline_code) == ("failed", reason)
    for off in (False, True):
        result = await charge(processor, cus, pm, off_session=off)
        assert (result.status, result.decline_code) == ("failed", reason)
        assert pid(result).startswith("pi_")
    retrieved = await processor.retrieve_payment(pid(result))
    assert (retrieved.status, retrieved.decline_code) == ("failed", reason)


async def test_0341_attaches_then_every_charge_fails(processor: SandboxProcessor,
                                                     engine: Engine) -> None:
    cus, pm = await saved(processor, engine, "4000000000000341")
    verified = await processor.verify_card(customer_id=cus, method_id=pm, amount_minor=100,
                                           currency="usd", idempotency_key=key())
    # The card check at binding passes (as Stripe's setup of this card does) ...
    assert (verified.status, verified.decline_code) == ("succeeded", None)
    for off in (False, True):
        result = await charge(processor, cus, pm, off_session=off)
        assert (result.status, result.decline_code, result.message) == (
            "failed", "generic_decline", "Your card was declined.")


async def test_3155_needs_setup_then_charges_off_session(processor: SandboxProcessor,
                                                         engine: Engine) -> None:
    cus, pm = await saved(processor, engine, "4000002500003155")
    off = await charge(processor, cus, pm, off_session=True)
    assert (off.status, off.decline_code) == ("failed", "authentication_required")
    assert (off.client_secret or "").startswith(pid(off) + "_secret_")
    on = await charge(processor, cus, pm, off_session=False)
    assert on.status == "requires_action" and on.client_secret
    verify = await processor.verify_card(customer_id=cus, method_id=pm, amount_minor=100,
                                         currency="usd", idempotency_key=key())
    assert verify.status == "requires_action" and verify.client_secret
    # Not set up until the customer authenticates the verification.
    assert (await charge(processor, cus, pm)).status == "failed"
    done = await processor.authenticate(payment_id=pid(verify))
    assert done.status == "succeeded" and done.client_secret is None
    assert (await processor.retrieve_payment(pid(verify))).status == "canceled"
    # Set up: off-session succeeds; on-session still asks.
    assert (await charge(processor, cus, pm, off_session=True)).status == "succeeded"
    assert (await charge(processor, cus, pm, off_session=False)).status == "requires_action"
    again = await processor.verify_card(customer_id=cus, method_id=pm, amount_minor=100,
                                        currency="usd", idempotency_key=key())
    assert again.status == "succeeded"


async def test_3184_always_needs_authentication(processor: SandboxProcessor,
                                                engine: Engine) -> None:
    cus, pm = await saved(processor, engine, "4000002760003184")
    verify = await processor.verify_card(customer_id=cus, method_id=pm, amount_minor=100,
                                         currency="usd", idempotency_key=key())
    assert verify.status == "requires_action"
    assert (await processor.authenticate(payment_id=pid(verify))).status == \
        "succeeded"
    off = await charge(processor, cus, pm, off_session=True)
    assert (off.status, off.decline_code) == ("failed", "authentication_required")
    # The customer comes back and authenticates the declined payment: it succeeds.
    back = await processor.authenticate(payment_id=pid(off))
    assert back.status == "succeeded" and back.decline_code is None
    on = await charge(processor, cus, pm, off_session=False)
    failed = await processor.authenticate(payment_id=pid(on),
                                          authenticated=False)
    assert (failed.status, failed.decline_code) == \
        ("failed", "payment_intent_authentication_failure")
    with pytest.raises(PaymentError) as info:
        await processor.authenticate(payment_id=pid(back))
    assert info.value.code == "payment_intent_unexpected_state"


async def test_3178_declines_even_after_authentication(processor: SandboxProcessor,
                                                       engine: Engine) -> None:
    cus, pm = await saved(processor, engine, "4000008260003178")
    off = await charge(processor, cus, pm, off_session=True)
    assert (off.status, off.decline_code) == ("failed", "insufficient_funds")
    on = await charge(processor, cus, pm, off_session=False)
    assert on.status == "requires_action"
    after = await processor.authenticate(payment_id=pid(on))
    assert (after.status, after.decline_code) == ("failed", "insufficient_funds")


async def test_attach_rules(processor: SandboxProcessor, engine: Engine) -> None:
    cus, other = await customer(processor), await customer(processor)
    pm = new_method(engine, "4242424242424242")
    method = await processor.attach_method(customer_id=cus, method_id=pm)
    assert (method.method_id, method.customer_id, method.card.brand, method.card.last4,
            method.card.exp_month, method.card.exp_year, method.billing) == \
        (pm, cus, "visa", "4242", 12, EXP_YEAR, BILLING)
    assert len(method.card.fingerprint) == 32
    assert await processor.attach_method(customer_id=cus, method_id=pm) == method
    with pytest.raises(PaymentError) as info:
        await processor.attach_method(customer_id=other, method_id=pm)
    assert info.value.code == "payment_method_unexpected_state"
    with pytest.raises(PaymentError) as info:
        await processor.attach_method(customer_id=cus, method_id="pm_nope")
    assert (info.value.code, info.value.param) == ("resource_missing", "payment_method")
    with pytest.raises(PaymentError) as info:
        await processor.attach_method(customer_id="cus_nope", method_id=pm)
    assert (info.value.code, info.value.param) == ("resource_missing", "customer")
    # Another customer cannot charge it either.
    with pytest.raises(PaymentError) as info:
        await charge(processor, other, pm)
    assert info.value.code == "payment_method_unexpected_state"
    # Detaching is permanent.
    await processor.detach_method(method_id=pm)
    for attempt in (processor.attach_method(customer_id=cus, method_id=pm),
                    processor.detach_method(method_id=pm), charge(processor, cus, pm)):
        with pytest.raises(PaymentError) as info:
            await attempt
        assert info.value.code == "payment_method_unexpected_state"
    with pytest.raises(PaymentError) as info:
        await processor.detach_method(method_id="pm_nope")
    assert info.value.code == "resource_missing"


async def test_amount_and_currency(processor: SandboxProcessor, engine: Engine) -> None:
    cus, pm = await saved(processor, engine, "4242424242424242")
    for amount, code in ((49, "amount_too_small"), (0, "amount_too_small"),
                         (100_000_000, "amount_too_large")):
        with pytest.raises(PaymentError) as info:
            await charge(processor, cus, pm, amount=amount)
        assert (info.value.code, info.value.param) == (code, "amount")
    with pytest.raises(PaymentError) as info:
        await processor.charge(customer_id=cus, method_id=pm, amount_minor=500, currency="us",
                               off_session=True, idempotency_key=key(), description="x")
    assert info.value.param == "currency"
    ok = await processor.charge(customer_id=cus, method_id=pm, amount_minor=50, currency="USD",
                                off_session=True, idempotency_key=key(), description="x")
    assert (ok.status, ok.currency, ok.amount_minor, ok.customer_id, ok.method_id) == \
        ("succeeded", "usd", 50, cus, pm)
    assert payment_rows(engine)[0]["capture_method"] == "automatic"


async def test_idempotent_charge_returns_the_same_payment(processor: SandboxProcessor,
                                                          engine: Engine) -> None:
    cus, pm = await saved(processor, engine, "4242424242424242")
    first = await charge(processor, cus, pm, idem="k1")
    again = await charge(processor, cus, pm, idem="k1")
    assert again == first
    declined_cus = await customer(processor)
    declined_pm = new_method(engine, "4000000000009995")
    d1 = await charge(processor, declined_cus, declined_pm, idem="k2")
    assert await charge(processor, declined_cus, declined_pm, idem="k2") == d1
    assert len(payment_rows(engine)) == 2
    # The same key with other parameters (or for another operation) is refused.
    for call in (charge(processor, cus, pm, idem="k1", amount=501),
                 charge(processor, cus, pm, idem="k1", off_session=False),
                 charge(processor, cus, pm, idem="k1", description="other"),
                 processor.verify_card(customer_id=cus, method_id=pm, amount_minor=500,
                                       currency="usd", idempotency_key="k1"),
                 processor.refund(payment_id=pid(first),
                                  amount_minor=None, idempotency_key="k1")):
        with pytest.raises(PaymentError) as info:
            await call
        assert info.value.code == "idempotency_key_in_use"
        assert "same parameters" in info.value.message
    assert len(payment_rows(engine)) == 2
    # A request refused before it started saves nothing: the key can be used again.
    with pytest.raises(PaymentError):
        await charge(processor, cus, "pm_nope", idem="k3")
    assert (await charge(processor, cus, pm, idem="k3")).status == "succeeded"
    for bad in ("", "x" * 201):
        with pytest.raises(PaymentError) as info:
            await charge(processor, cus, pm, idem=bad)
        assert info.value.param == "idempotency_key"


async def test_idempotent_verification(processor: SandboxProcessor, engine: Engine) -> None:
    cus, pm = await saved(processor, engine, "4242424242424242")
    args: dict[str, Any] = {"customer_id": cus, "method_id": pm, "amount_minor": 100,
                            "currency": "usd"}
    first = await processor.verify_card(**args, idempotency_key="v1")
    assert await processor.verify_card(**args, idempotency_key="v1") == first
    rows = payment_rows(engine)
    assert len(rows) == 1
    assert (rows[0]["status"], rows[0]["capture_method"]) == ("canceled", "manual")


async def test_twenty_concurrent_charges_with_one_key_make_one_payment(
        processor: SandboxProcessor, engine: Engine) -> None:
    cus, pm = await saved(processor, engine, "4242424242424242")
    results = await asyncio.gather(*(charge(processor, cus, pm, idem="same") for _ in range(20)))
    assert {r.payment_id for r in results} == {results[0].payment_id}
    assert all(r.status == "succeeded" for r in results)
    rows = payment_rows(engine)
    assert len(rows) == 1 and rows[0]["id"] == results[0].payment_id


def test_a_duplicate_that_loses_the_insert_returns_the_winner(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The unique index, not the lookup, is what stops a second payment: with the lookup
    blind (as in a race), the insert collides and the winner's payment comes back."""
    from faregate.payments.sandbox import methods
    with engine.begin() as conn:
        cus = methods.create_customer(conn, reference=None, email=None)
    pm = new_method(engine, "4242424242424242")
    args: dict[str, Any] = {"customer_id": cus, "method_id": pm, "amount_minor": 500,
                            "currency": "usd", "off_session": True, "idempotency_key": "race",
                            "description": "d"}
    with engine.begin() as conn:
        winner = intents.charge(conn, **args)
    real = store.payment_by_key
    calls: list[str] = []

    def blind_once(conn: sa.Connection, k: str) -> object:
        calls.append(k)
        return None if len(calls) == 1 else real(conn, k)

    monkeypatch.setattr(intents, "payment_by_key", blind_once)
    with engine.begin() as conn:
        loser = intents.charge(conn, **args)
        assert conn.execute(sa.select(sa.func.count()).select_from(
            sandbox_payments)).scalar_one() == 1  # the transaction is still usable
    assert loser.id == winner.id and len(calls) == 2
    with engine.begin() as conn, pytest.raises(PaymentError) as info:
        intents.charge(conn, **(args | {"amount_minor": 600}))
    assert info.value.code == "idempotency_key_in_use"
    assert len(payment_rows(engine)) == 1


async def test_refunds(processor: SandboxProcessor, engine: Engine) -> None:
    cus, pm = await saved(processor, engine, "4242424242424242")
    paid = await charge(processor, cus, pm, amount=1000)
    payment_id = pid(paid)
    part = await processor.refund(payment_id=payment_id, amount_minor=300, idempotency_key="r1")
    assert (part.payment_id, part.amount_minor, part.status) == (payment_id, 300, "succeeded")
    assert part.refund_id.startswith("re_")
    assert await processor.refund(payment_id=payment_id, amount_minor=300,
                                  idempotency_key="r1") == part
    with pytest.raises(PaymentError) as info:
        await processor.refund(payment_id=payment_id, amount_minor=301, idempotency_key="r1")
    assert info.value.code == "idempotency_key_in_use"
    with pytest.raises(PaymentError) as info:
        await processor.refund(payment_id=payment_id, amount_minor=701, idempotency_key="r2")
    assert (info.value.code, info.value.param) == ("amount_too_large", "amount")
    for bad in (0, -5):
        with pytest.raises(PaymentError) as info:
            await processor.refund(payment_id=payment_id, amount_minor=bad, idempotency_key="r2")
        assert info.value.code == "parameter_invalid_integer"
    rest = await processor.refund(payment_id=payment_id, amount_minor=None, idempotency_key="r2")
    assert rest.amount_minor == 700
    with pytest.raises(PaymentError) as info:
        await processor.refund(payment_id=payment_id, amount_minor=None, idempotency_key="r3")
    assert info.value.code == "charge_already_refunded"
    with engine.connect() as conn:
        refunded = conn.execute(sa.select(sandbox_payments.c.refunded_minor).where(
            sandbox_payments.c.id == payment_id)).scalar_one()
    assert refunded == 1000
    # The payment itself is unchanged; a refund is not a payment.
    assert (await processor.retrieve_payment(payment_id)).status == "succeeded"
    with pytest.raises(PaymentError) as info:
        await processor.retrieve_payment(part.refund_id)
    assert info.value.code == "resource_missing"
    # Only a succeeded charge can be refunded.
    verify = await processor.verify_card(customer_id=cus, method_id=pm, amount_minor=100,
                                         currency="usd", idempotency_key=key())
    declined = await charge(processor, await customer(processor),
                            new_method(engine, "4000000000000002"))
    for target in (pid(verify), pid(declined)):
        with pytest.raises(PaymentError) as info:
            await processor.refund(payment_id=target, amount_minor=None, idempotency_key=key())
        assert info.value.code == "payment_intent_unexpected_state"
    with pytest.raises(PaymentError) as info:
        await processor.refund(payment_id="pi_nope", amount_minor=None, idempotency_key=key())
    assert info.value.code == "resource_missing"


async def test_concurrent_refunds_never_exceed_the_amount(processor: SandboxProcessor,
                                                          engine: Engine) -> None:
    cus, pm = await saved(processor, engine, "4242424242424242")
    paid = await charge(processor, cus, pm, amount=1000)
    payment_id = pid(paid)

    async def one(i: int) -> int:
        try:
            r = await processor.refund(payment_id=payment_id, amount_minor=300,
                                       idempotency_key=f"cr{i}")
        except PaymentError as exc:
            codes.append(exc.code)
            return 0
        return r.amount_minor

    codes: list[str | None] = []
    total = sum(await asyncio.gather(*(one(i) for i in range(12))))
    assert total == 900
    assert codes == ["amount_too_large"] * 9
    with engine.connect() as conn:
        assert conn.execute(sa.select(sandbox_payments.c.refunded_minor).where(
            sandbox_payments.c.id == payment_id)).scalar_one() == 900


async def test_retrieve_payment(processor: SandboxProcessor, engine: Engine) -> None:
    cus, pm = await saved(processor, engine, "4242424242424242")
    paid = await charge(processor, cus, pm, amount=777)
    got = await processor.retrieve_payment(pid(paid))
    assert got == paid
    with pytest.raises(PaymentError) as info:
        await processor.retrieve_payment("pi_missing")
    assert (info.value.code, info.value.param) == ("resource_missing", "intent")
