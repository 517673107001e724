"""The sandbox's browser-facing API over HTTP (ASGI transport, real database): Stripe's
PaymentMethod shape, Stripe's error object, no session needed, and the card number and CVC
never echoed, logged or stored."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from faregate.db.runner import Database
from faregate.db.schema import sandbox_customers, sandbox_payment_methods, sandbox_payments
from faregate.payments.processor import PaymentError
from faregate.payments.sandbox import SandboxProcessor, sandbox_router
from tests.payments.conftest import WEBHOOK_SECRET

NUMBER = "4242424242424242"
CVC = "739"
FORM = {"type": "card", "card[number]": NUMBER, "card[exp_month]": "12",
        "card[exp_year]": "2034", "card[cvc]": CVC, "billing_details[name]": "Ada Lovelace",
        "billing_details[address][line1]": "1 Main St",
        "billing_details[address][city]": "Springfield",
        "billing_details[address][state]": "IL",
        "billing_details[address][postal_code]": "62701",
        "billing_details[address][country]": "us"}


@pytest.fixture
async def client(db: Database) -> AsyncIterator[httpx2.AsyncClient]:
    app = FastAPI()
    app.include_router(sandbox_router(db, webhook_secret=WEBHOOK_SECRET), prefix="/sandbox/v1")
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app),
                                  base_url="http://sandbox.test") as c:
        yield c


async def create(client: httpx2.AsyncClient, **kwargs: Any) -> httpx2.Response:
    return await client.post("/sandbox/v1/payment_methods",
                             headers={"Authorization": "Bearer pk_test_sandbox"}, **kwargs)


async def test_form_body_like_stripe_js(client: httpx2.AsyncClient, engine: Engine) -> None:
    r = await create(client, data=FORM)
    assert r.status_code == 200, r.text
    body = r.json()
    assert re.fullmatch(r"pm_[0-9a-f]{24}", body["id"])
    assert body["object"] == "payment_method" and body["type"] == "card"
    card = body["card"]
    assert (card["brand"], card["last4"], card["exp_month"], card["exp_year"],
            card["country"]) == ("visa", "4242", 12, 2034, "US")
    assert re.fullmatch(r"[0-9a-f]{32}", card["fingerprint"])
    assert body["billing_details"] == {
        "name": "Ada Lovelace", "email": None, "phone": None,
        "address": {"line1": "1 Main St", "line2": None, "city": "Springfield", "state": "IL",
                    "postal_code": "62701", "country": "US"}}
    assert NUMBER not in r.text and f'"{CVC}"' not in r.text
    with engine.connect() as conn:
        assert conn.execute(sa.select(sandbox_payment_methods.c.id)).scalar_one() == body["id"]


async def test_json_bodies_flat_and_nested(client: httpx2.AsyncClient) -> None:
    flat = {"number": "3782 8224 6310 005", "exp_month": 1, "exp_year": 2030, "cvc": "1234",
            "postal_code": "10001",
            "billing": {"name": "B", "line1": "2 St", "city": "NYC", "state": "NY",
                        "postal_code": "ignored", "country": "US"}}
    r = await client.post("/sandbox/v1/payment_methods", json=flat)  # no Authorization
    assert r.status_code == 200, r.text
    assert (r.json()["card"]["brand"], r.json()["card"]["last4"]) == ("amex", "0005")
    assert r.json()["billing_details"]["address"]["postal_code"] == "10001"
    nested = {"type": "card", "card": {"number": "3566002020360505", "exp_month": "3",
                                       "exp_year": "31", "cvc": "123"},
              "billing_details": {"address": {"postal_code": "100-0001"}}}
    r = await client.post("/sandbox/v1/payment_methods", json=nested)
    assert r.status_code == 200, r.text
    assert (r.json()["card"]["brand"], r.json()["card"]["exp_year"],
            r.json()["card"]["country"]) == ("jcb", 2031, "JP")
    # The same card twice: the same fingerprint.
    again = await client.post("/sandbox/v1/payment_methods", json=nested)
    assert again.json()["card"]["fingerprint"] == r.json()["card"]["fingerprint"]
    assert again.json()["id"] != r.json()["id"]


def _form(**changes: str) -> dict[str, str]:
    return FORM | changes


@pytest.mark.parametrize(("changes", "status", "code", "param", "decline_code"), [
    ({"card[number]": "4242424242424241"}, 402, "incorrect_number", "number", None),
    ({"card[number]": "4242"}, 402, "invalid_number", "number", None),
    ({"card[exp_month]": "13"}, 402, "invalid_expiry_month", "exp_month", None),
    ({"card[exp_year]": "95"}, 402, "invalid_expiry_year", "exp_year", None),
    ({"card[cvc]": "99"}, 402, "invalid_cvc", "cvc", None),
    ({"billing_details[address][postal_code]": ""}, 402, "incomplete_zip",
     "billing_details[address][postal_code]", None),
    ({"card[number]": "4111111111111111"}, 402, "card_declined", None, "test_mode_live_card"),
])
async def test_card_errors(client: httpx2.AsyncClient, engine: Engine, changes: dict[str, str],
                           status: int, code: str, param: str | None,
                           decline_code: str | None) -> None:
    r = await create(client, data=_form(**changes))
    assert r.status_code == status
    error = r.json()["error"]
    assert (error["type"], error["code"], error["param"], error.get("decline_code")) == \
        ("card_error", code, param, decline_code)
    assert error["message"]
    for value in changes.values():
        if value:
            assert value not in r.text
    assert NUMBER not in r.text and CVC not in error["message"]
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(
            sandbox_payment_methods)).scalar_one() == 0


async def test_invalid_requests(client: httpx2.AsyncClient) -> None:
    missing = {k: v for k, v in FORM.items() if k != "card[cvc]"}
    r = await create(client, data=missing)
    assert r.status_code == 400
    assert r.json()["error"] == {"type": "invalid_request_error", "code": "parameter_missing",
                                 "param": "card[cvc]",
                                 "message": "Missing required param: card[cvc]."}
    r = await client.post("/sandbox/v1/payment_methods", content=b"{not json",
                          headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()["error"]["type"]) == (400, "invalid_request_error")
    r = await client.post("/sandbox/v1/payment_methods", json=[1, 2])
    assert r.status_code == 400
    r = await client.post("/sandbox/v1/payment_methods", json={"number": [NUMBER]})
    assert r.status_code == 400 and NUMBER not in r.text
    r = await client.post("/sandbox/v1/payment_methods", content=b"a" * 20_000,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400


async def test_authentication_page(client: httpx2.AsyncClient, db: Database,
                                   engine: Engine) -> None:
    processor = SandboxProcessor(db, webhook_secret=WEBHOOK_SECRET)
    r = await create(client, data=_form(**{"card[number]": "4000002500003155"}))
    pm = r.json()["id"]
    cus = await processor.create_customer(organization_id="org", email=None)
    await processor.attach_method(customer_id=cus, method_id=pm)
    verify = await processor.verify_card(customer_id=cus, method_id=pm, amount_minor=100,
                                         currency="usd", idempotency_key="a1")
    assert verify.status == "requires_action" and verify.client_secret
    url = f"/sandbox/v1/payment_intents/{verify.payment_id}/confirm"
    wrong = await client.post(url, data={"client_secret": verify.client_secret + "x"})
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (404, "resource_missing")
    other = await client.post("/sandbox/v1/payment_intents/pi_other/confirm",
                              data={"client_secret": verify.client_secret})
    assert other.status_code == 404
    bad = await client.post(url, data={"client_secret": verify.client_secret,
                                       "authentication": "maybe"})
    assert bad.status_code == 400
    ok = await client.post(url, json={"client_secret": verify.client_secret})
    assert ok.status_code == 200, ok.text
    assert (ok.json()["object"], ok.json()["status"], ok.json()["capture_method"]) == \
        ("payment_intent", "canceled", "manual")
    again = await client.post(url, json={"client_secret": verify.client_secret})
    assert (again.status_code, again.json()["error"]["code"]) == \
        (400, "payment_intent_unexpected_state")
    # Set up now: off-session charges go through.
    paid = await processor.charge(customer_id=cus, method_id=pm, amount_minor=500,
                                  currency="usd", off_session=True, idempotency_key="a2",
                                  description="auto-recharge")
    assert paid.status == "succeeded"
    on = await processor.charge(customer_id=cus, method_id=pm, amount_minor=500,
                                currency="usd", off_session=False, idempotency_key="a3",
                                description="top-up")
    failed = await client.post(f"/sandbox/v1/payment_intents/{on.payment_id}/confirm",
                               data={"client_secret": on.client_secret or "",
                                     "authentication": "fail"})
    assert failed.status_code == 200
    assert failed.json()["status"] == "requires_payment_method"
    assert failed.json()["last_payment_error"]["code"] == "payment_intent_authentication_failure"


async def test_no_confirm_route_without_the_secret(db: Database) -> None:
    app = FastAPI()
    app.include_router(sandbox_router(db), prefix="/sandbox/v1")
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app),
                                  base_url="http://t") as c:
        r = await c.post("/sandbox/v1/payment_intents/pi_x/confirm", data={"client_secret": "x"})
        assert r.status_code == 404 and "error" not in r.json()
        assert (await c.post("/sandbox/v1/payment_methods", data=FORM)).status_code == 200


CARDS = {"4242424242424242": "739", "378282246310005": "7391", "6205500000000000004": "462",
         "4000000000009995": "518", "4000000000000341": "864", "4000002500003155": "275"}
_ID = re.compile(r"(pm|cus|pi|re)_[0-9a-f]{24}")
_HEX = re.compile(r"[0-9a-f]{32}|[0-9a-f]{64}")


async def test_no_sandbox_row_holds_a_card_number_or_cvc(
        client: httpx2.AsyncClient, db: Database, engine: Engine, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    processor = SandboxProcessor(db, webhook_secret=WEBHOOK_SECRET)
    cus = await processor.create_customer(organization_id="org", email="a@example.com")
    for i, (number, cvc) in enumerate(CARDS.items()):
        r = await create(client, data=_form(**{"card[number]": number, "card[cvc]": cvc}))
        assert r.status_code == 200, r.text
        assert number not in r.text and cvc not in r.text.replace(r.json()["id"], "").replace(
            r.json()["card"]["fingerprint"], "")
        pm = r.json()["id"]
        if number == "4000000000009995":  # an issuer decline: it cannot be attached
            with pytest.raises(PaymentError):
                await processor.attach_method(customer_id=cus, method_id=pm)
        else:
            await processor.attach_method(customer_id=cus, method_id=pm)
        await processor.verify_card(customer_id=cus, method_id=pm, amount_minor=100,
                                    currency="usd", idempotency_key=f"n{i}")
        paid = await processor.charge(customer_id=cus, method_id=pm, amount_minor=500,
                                      currency="usd", off_session=True,
                                      idempotency_key=f"c{i}", description="top-up")
        if paid.status == "succeeded":
            await processor.refund(payment_id=paid.payment_id or "", amount_minor=100,
                                   idempotency_key=f"r{i}")
    checked = 0
    with engine.connect() as conn:
        for table in (sandbox_customers, sandbox_payment_methods, sandbox_payments):
            for row in conn.execute(sa.select(table)).mappings():
                for column, value in row.items():
                    checked += 1
                    if not isinstance(value, str):  # times, amounts, flags: not text
                        assert str(value) not in CARDS.values()
                        continue
                    text = value
                    for number, cvc in CARDS.items():
                        assert number not in text, (table.name, column)
                        assert number[:12] not in text and number[-10:] not in text
                        if column in ("id", "customer_id", "method_id", "message"):
                            text = _ID.sub("", text)
                        if column in ("fingerprint", "request_hash"):
                            assert _HEX.fullmatch(text), (table.name, column)
                            continue
                        assert cvc not in text, (table.name, column, text)
    assert checked > 200
    # Nor anywhere in the database's files (SQLite), nor in any log record.
    files = list(tmp_path.glob("faregate.db*"))
    assert files or engine.dialect.name != "sqlite"
    for path in files:
        raw = path.read_bytes()
        for number in CARDS:
            assert number.encode() not in raw
    for number, cvc in CARDS.items():
        assert number not in caplog.text
        assert f"cvc={cvc}" not in caplog.text and f'"{cvc}"' not in caplog.text
