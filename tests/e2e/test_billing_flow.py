"""Billing through HTTP with the sandbox processor, on SQLite and PostgreSQL: bind a card and
top up; refusals; failed charges suspend billing and /v1 refuses; a good payment reinstates;
one Idempotency-Key under 20 concurrent requests charges once; the response plus five webhook
deliveries credit once; a charge whose recording was lost is reconciled without a second
charge. Afterwards no card number or CVC is anywhere in the database or the log."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import aiohttp
import openai
import pytest
import sqlalchemy as sa

from faregate.db.schema import charge_attempts, sandbox_payments
from tests.e2e.api_client import ApiClient, outbox, verified_owner
from tests.harness import Deployment

CVC = "737"


def _tokenize(c: ApiClient, number: str, cvc: str = CVC) -> Any:
    year = dt.date.today().year + 3
    return c.http.post("/sandbox/v1/payment_methods", json={
        "number": number, "exp_month": 12, "exp_year": year, "cvc": cvc, "postal_code": "94107",
        "billing": {"name": "Ada Lovelace", "line1": "1 Main St", "city": "San Francisco",
                    "state": "CA", "postal_code": "94107", "country": "US"}})


def _bind(c: ApiClient, org: str, number: str) -> Any:
    token = _tokenize(c, number)
    assert token.status_code == 200, token.text
    return c.post(f"/api/orgs/{org}/payment-methods", {"payment_method_id": token.json()["id"]})


def _usd(c: ApiClient, org: str) -> str:
    return str(c.get(f"/api/orgs/{org}/billing").json()["balance"]["usd"])


def test_bind_top_up_and_refusals(any_dep: Deployment) -> None:
    server = any_dep.start_server(FAREGATE_LOG_LEVEL="debug")
    c, org = verified_owner(any_dep, server.base_url)
    assert c.get("/api/billing/config").json()["simulated"] is True

    r = _bind(c, org, "4000000000009995")
    assert r.status_code == 402 and r.json()["error"]["code"] == "insufficient_funds"
    assert "insufficient funds" in r.json()["error"]["message"]
    bad = _tokenize(c, "4242424242424241")  # fails Luhn
    assert bad.status_code in (400, 402) and bad.json()["error"]["code"] in (
        "incorrect_number", "invalid_number")

    r = _bind(c, org, "4242424242424242")
    assert r.status_code == 201, r.text
    card = r.json()
    assert card["brand"] == "visa" and card["last4"] == "4242"
    for amount in ("4.99", "50.01", "abc", "5.001"):
        r = c.post(f"/api/orgs/{org}/top-ups", {"amount_usd": amount})
        assert r.status_code == 400, (amount, r.text)
    r = c.post(f"/api/orgs/{org}/top-ups", {"amount_usd": "5"},
               headers={"Idempotency-Key": "first"})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "succeeded" and r.json()["balance_after"]["usd"] == "5"
    assert _usd(c, org) == "5"
    entries = c.get(f"/api/orgs/{org}/credit-history").json()["data"]
    assert [(e["kind"], e["amount"]["usd"]) for e in entries] == [("topup", "5")]

    # The key works now; nothing secret of the card is kept or logged.
    key = c.post(f"/api/orgs/{org}/keys", {"name": "k"}).json()["key"]
    sdk = openai.OpenAI(api_key=key, base_url=f"{server.base_url}/v1", max_retries=0)
    assert sdk.chat.completions.create(model="faregate-dev", max_tokens=3, messages=[
        {"role": "user", "content": "hi"}]).usage is not None
    any_dep.stop_all_servers()
    from tests.e2e.test_account_flow import _dump_database
    for where, text in {"database": _dump_database(any_dep),
                        "log": server.log.read_text()}.items():
        for number in ("4242424242424242", "4000000000009995", "4242424242424241"):
            assert number not in text, where
        assert f'"{CVC}"' not in text and f"cvc={CVC}" not in text, where
    assert any_dep.verify() == []


def test_failed_charges_suspend_and_a_payment_reinstates(any_dep: Deployment) -> None:
    server = any_dep.start_server()
    c, org = verified_owner(any_dep, server.base_url)
    assert _bind(c, org, "4242424242424242").status_code == 201
    assert c.post(f"/api/orgs/{org}/top-ups", {"amount_usd": "5"}).status_code == 201
    failing = _bind(c, org, "4000000000000341")
    assert failing.status_code == 201, failing.text  # attaches; its charges fail
    r = c.put(f"/api/orgs/{org}/auto-recharge", {
        "enabled": True, "threshold_usd": "10", "amount_usd": "10",
        "payment_method_id": failing.json()["id"]})
    assert r.status_code == 200, r.text
    # The worker tries, fails; after the retry pause (moved back in the database) it fails
    # again: billing is suspended, /v1 refuses, the owners are emailed.
    _wait(lambda: _attempts(any_dep, org, "failed") >= 1, describe=lambda: any_dep.query(
        "SELECT status, kind, created_at FROM charge_attempts"))
    _age_attempts(any_dep, org)
    _wait(lambda: c.get(f"/api/orgs/{org}/billing").json()["status"] == "suspended")
    assert _attempts(any_dep, org, "failed") == 2
    key = c.post(f"/api/orgs/{org}/keys", {"name": "k"}).json()["key"]
    time.sleep(2.2)  # the key cache's bound
    sdk = openai.OpenAI(api_key=key, base_url=f"{server.base_url}/v1", max_retries=0)
    with pytest.raises(openai.RateLimitError) as info:
        sdk.chat.completions.create(model="faregate-dev", max_tokens=3,
                                    messages=[{"role": "user", "content": "hi"}])
    assert info.value.code == "billing_not_active"
    mails = [m for m in outbox(any_dep.data_dir, "email") if "suspended" in m["subject"]]
    assert len(mails) == 1
    # A successful top-up with the good card reinstates (the default policy).
    good = next(m["id"] for m in c.get(f"/api/orgs/{org}/billing").json()["payment_methods"]
                if m["last4"] == "4242")
    r = c.post(f"/api/orgs/{org}/top-ups", {"amount_usd": "10", "payment_method_id": good})
    assert r.status_code == 201, r.text
    billing = c.get(f"/api/orgs/{org}/billing").json()
    assert billing["status"] == "active" and billing["failed_charges"] == 0
    time.sleep(2.2)
    assert sdk.chat.completions.create(model="faregate-dev", max_tokens=3, messages=[
        {"role": "user", "content": "hi"}]).usage is not None
    actions = [e["action"] for e in c.get(f"/api/orgs/{org}/audit").json()["data"]]
    assert "billing.suspended" in actions and "billing.reinstated" in actions
    assert any_dep.verify() == []


def _attempts(dep: Deployment, org: str, status: str) -> int:
    with dep.engine.begin() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(charge_attempts).where(
            charge_attempts.c.organization_id == org,
            charge_attempts.c.status == status)).scalar_one())


def _age_attempts(dep: Deployment, org: str) -> None:
    with dep.engine.begin() as conn:
        conn.execute(charge_attempts.update().where(charge_attempts.c.organization_id == org)
                     .values(created_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)))


def _wait(check: Any, timeout_s: float = 20.0, describe: Any = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting: {describe() if describe else ''}")


def test_one_idempotency_key_charges_once(any_dep: Deployment) -> None:
    server = any_dep.start_server()
    c, org = verified_owner(any_dep, server.base_url)
    assert _bind(c, org, "4242424242424242").status_code == 201
    cookies = {k: v for k, v in c.http.cookies.items()}
    csrf = cookies["fg_csrf"]

    async def one(session: aiohttp.ClientSession) -> tuple[int, Any]:
        async with session.post(f"{server.base_url}/api/orgs/{org}/top-ups",
                                json={"amount_usd": "7"},
                                headers={"Idempotency-Key": "same", "X-CSRF-Token": csrf},
                                cookies=cookies) as r:
            return r.status, await r.json()

    async def main() -> list[tuple[int, Any]]:
        async with aiohttp.ClientSession() as s:
            return await asyncio.gather(*(one(s) for _ in range(20)))

    results = asyncio.run(main())
    ok = [b for st, b in results if st == 201]
    assert ok and all(st in (201, 409) for st, _ in results), results
    assert len({b["id"] for b in ok}) == 1
    assert _usd(c, org) == "7"
    with any_dep.engine.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sandbox_payments).where(
            sandbox_payments.c.capture_method == "automatic")).scalar_one() == 1
    # The same key with other parameters is refused.
    r = c.post(f"/api/orgs/{org}/top-ups", {"amount_usd": "8"},
               headers={"Idempotency-Key": "same"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "idempotency_key_reused"
    assert any_dep.verify() == []


def test_response_and_webhooks_credit_once(any_dep: Deployment) -> None:
    from faregate.payments.sandbox.webhooks import event_payload, sign_payload

    server = any_dep.start_server()
    c, org = verified_owner(any_dep, server.base_url)
    assert _bind(c, org, "5555555555554444").status_code == 201
    r = c.post(f"/api/orgs/{org}/top-ups", {"amount_usd": "20"})
    assert r.status_code == 201
    secret = (any_dep.data_dir / "secrets" / "sandbox_webhook_secret").read_bytes().strip()
    with any_dep.engine.begin() as conn:
        payment = conn.execute(sa.select(sandbox_payments).where(
            sandbox_payments.c.capture_method == "automatic")).one()
    payload = event_payload("payment_intent.succeeded", payment)
    for _ in range(5):  # the processor redelivers
        r = c.http.post("/webhooks/sandbox", content=payload,
                        headers={"Stripe-Signature": sign_payload(payload, secret),
                                 "Content-Type": "application/json"})
        assert r.status_code == 200, r.text
    assert _usd(c, org) == "20"
    tampered = payload.replace(b'"amount": 2000', b'"amount": 999999')
    r = c.http.post("/webhooks/sandbox", content=tampered,
                    headers={"Stripe-Signature": sign_payload(payload, secret)})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_signature"
    assert any_dep.verify() == []


def test_a_lost_recording_is_reconciled_without_a_second_charge(any_dep: Deployment) -> None:
    """The process dies after the processor charged and before the outcome was recorded: the
    attempt is pending; the reconciliation job asks again with the same idempotency key, gets
    the first payment, and credits it once."""
    from faregate.billing.charges import Policy, _start, charge_description, reconcile
    from faregate.config import Settings
    from faregate.db.runner import Database
    from faregate.payments.factory import processor_from

    server = any_dep.start_server()
    c, org = verified_owner(any_dep, server.base_url)
    card = _bind(c, org, "4242424242424242").json()["id"]
    any_dep.stop_all_servers()
    settings = Settings(data_dir=any_dep.data_dir, database_url=any_dep.database_url)

    async def main() -> int:
        db = Database(any_dep.engine)
        processor = processor_from(settings, db)
        started = await db.run(lambda conn: _start(
            conn, processor="sandbox", organization_id=org, kind="topup",
            amount_nano=10 * 10**9, method_ref=card, client_key=None, user_id=None))
        customer = await db.run(lambda conn: conn.execute(sa.text(
            "SELECT customer_id FROM billing_customers WHERE organization_id = :o"),
            {"o": org}).scalar_one())
        await processor.charge(customer_id=customer, method_id=started.method_id,
                               amount_minor=1000, currency="usd", off_session=False,
                               idempotency_key=started.attempt_id,
                               description=charge_description("topup"))
        # ... and here the process died. Later, the reconciliation job runs:
        await db.run(lambda conn: conn.execute(charge_attempts.update().values(
            created_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))))
        return await reconcile(db, processor, Policy(2, True))

    assert asyncio.run(main()) == 1
    with any_dep.engine.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sandbox_payments).where(
            sandbox_payments.c.capture_method == "automatic")).scalar_one() == 1
        assert conn.execute(sa.select(charge_attempts.c.status)).scalars().all() == [
            "succeeded"]
    assert any_dep.balance_of_org(org)[0] == 10 * 10**9
    assert any_dep.verify() == []




def test_binding_from_a_blocked_network_is_refused(sqlite_dep: Deployment) -> None:
    from faregate.db.schema import risk_decisions

    server = sqlite_dep.start_server(FAREGATE_RISK_BLOCKED_NETWORKS='["127.0.0.0/8"]')
    c, org = verified_owner(sqlite_dep, server.base_url)
    r = _bind(c, org, "4242424242424242")
    assert r.status_code == 403 and r.json()["error"]["code"] == "risk_blocked"
    assert "proxy" in r.json()["error"]["message"]
    with sqlite_dep.engine.begin() as conn:
        rows = conn.execute(sa.select(risk_decisions.c.decision, risk_decisions.c.reason)).all()
    assert [(d, "blocked network" in why) for d, why in rows] == [("block", True)]
    assert c.get(f"/api/orgs/{org}/billing").json()["payment_methods"] == []


def test_risk_decisions_are_recorded(sqlite_dep: Deployment) -> None:
    from faregate.db.schema import risk_decisions

    server = sqlite_dep.start_server()
    c, org = verified_owner(sqlite_dep, server.base_url)
    assert _bind(c, org, "4000000000009995").status_code == 402
    assert _bind(c, org, "4242424242424242").status_code == 201
    with sqlite_dep.engine.begin() as conn:
        rows = conn.execute(sa.select(risk_decisions.c.decision)
                            .order_by(risk_decisions.c.id)).scalars().all()
    assert rows == ["block", "allow"]


def test_3d_secure_binding_and_top_up(any_dep: Deployment) -> None:
    server = any_dep.start_server()
    c, org = verified_owner(any_dep, server.base_url)
    # 3155: the bank asks to authenticate the $5 check; after that the card is bound.
    r = _bind(c, org, "4000002500003155")
    assert r.status_code == 202, r.text
    pending = r.json()
    assert pending["status"] == "requires_action" and pending["client_secret"]
    early = c.post(f"/api/orgs/{org}/payment-methods/confirm",
                   {"payment_method_id": pending["payment_method_id"],
                    "verification_id": pending["verification_id"]})
    assert early.status_code == 402 and early.json()["error"]["code"] == \
        "authentication_required"
    done = c.http.post(pending["confirm_url"], json={"client_secret": pending["client_secret"],
                                                     "authentication": "complete"})
    assert done.status_code == 200, done.text
    r = c.post(f"/api/orgs/{org}/payment-methods/confirm",
               {"payment_method_id": pending["payment_method_id"],
                "verification_id": pending["verification_id"]})
    assert r.status_code == 201, r.text
    card = r.json()["id"]
    # On-session payments with this card always ask the bank: 202, authenticate, refresh.
    r = c.post(f"/api/orgs/{org}/top-ups", {"amount_usd": "10", "payment_method_id": card})
    assert r.status_code == 202, r.text
    attempt = r.json()
    assert attempt["status"] == "requires_action" and _usd(c, org) == "0"
    assert c.http.post(attempt["confirm_url"], json={
        "client_secret": attempt["client_secret"], "authentication": "complete"}
        ).status_code == 200
    r = c.post(f"/api/orgs/{org}/top-ups/{attempt['id']}/refresh")
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    assert _usd(c, org) == "10"
    # Refreshing again changes nothing.
    assert c.post(f"/api/orgs/{org}/top-ups/{attempt['id']}/refresh").json()["credited"]
    assert _usd(c, org) == "10"
    # 3184 with a failed authentication: not bound.
    r = _bind(c, org, "4000002760003184")
    assert r.status_code == 202
    p = r.json()
    c.http.post(p["confirm_url"], json={"client_secret": p["client_secret"],
                                        "authentication": "fail"})
    r = c.post(f"/api/orgs/{org}/payment-methods/confirm",
               {"payment_method_id": p["payment_method_id"],
                "verification_id": p["verification_id"]})
    assert r.status_code == 402
    cards = c.get(f"/api/orgs/{org}/billing").json()["payment_methods"]
    assert [m["last4"] for m in cards] == ["3155"]
    assert any_dep.verify() == []
