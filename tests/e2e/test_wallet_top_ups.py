"""Top-ups paid with Alipay and WeChat Pay, end to end through HTTP with the sandbox's stand-in
for the wallets, on SQLite and PostgreSQL: the top-up answers 202 with the next action (a
redirect, a QR code) and credits nothing; the customer authorizes on the wallet's page; the
refresh or the webhook credits it, once between them and redeliveries; a declined wallet
payment credits nothing and does not count towards suspension; wallets are refused where the
operator did not enable them. No card is ever saved."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa

from faregate.db.schema import billing_states, sandbox_payments
from faregate.payments.sandbox.webhooks import event_payload, sign_payload
from tests.e2e.api_client import ApiClient, verified_owner
from tests.harness import Deployment

WALLETS = {"FAREGATE_STRIPE_WALLETS": "alipay,wechat_pay"}


def _usd(c: ApiClient, org: str) -> str:
    return str(c.get(f"/api/orgs/{org}/billing").json()["balance"]["usd"])


def _authorize(c: ApiClient, page_url: str, choice: str = "authorize") -> str:
    """What the customer does in the wallet: open the page, press a button (a form post)."""
    page = c.http.get(page_url)
    assert page.status_code == 200 and "Sandbox" in page.text, page.text
    assert page.headers["cache-control"] == "no-store"
    form = dict(re.findall(r'name="(client_secret|return_url)" value="([^"]*)"', page.text))
    done = c.http.post(page_url.split("?")[0], data={**form, "authorization": choice})
    assert done.status_code == 200, done.text
    return done.text


def _webhook(dep: Deployment, c: ApiClient, payment_id: str, event: str) -> None:
    secret = (dep.data_dir / "secrets" / "sandbox_webhook_secret").read_bytes().strip()
    with dep.engine.begin() as conn:
        payment = conn.execute(sa.select(sandbox_payments).where(
            sandbox_payments.c.id == payment_id)).one()
    payload = event_payload(event, payment)
    r = c.http.post("/webhooks/sandbox", content=payload,
                    headers={"Stripe-Signature": sign_payload(payload, secret),
                             "Content-Type": "application/json"})
    assert r.status_code == 200, r.text


def _payment_of(dep: Deployment, attempt_id: str) -> str:
    rows = dep.query("SELECT payment_id FROM charge_attempts WHERE id = :a", a=attempt_id)
    return str(rows[0][0])


def test_alipay_redirect_then_refresh_and_webhooks_credit_once(any_dep: Deployment) -> None:
    server = any_dep.start_server(**WALLETS)
    c, org = verified_owner(any_dep, server.base_url)
    assert c.get("/api/billing/config").json()["wallets"] == ["alipay", "wechat_pay"]

    r = c.post(f"/api/orgs/{org}/top-ups", {"amount_usd": "10", "payment_method_type": "alipay"},
               headers={"Idempotency-Key": "ali-1"})
    assert r.status_code == 202, r.text
    attempt: dict[str, Any] = r.json()
    assert attempt["status"] == "requires_action" and attempt["payment_method_id"] == "alipay"
    action = attempt["next_action"]
    assert action["type"] == "redirect" and action["qr_data"] is None
    assert action["url"].startswith("/sandbox/v1/wallet_payments/pi_")
    back = parse_qs(urlsplit(action["url"]).query)["return_url"][0]
    assert back == f"{server.base_url}/billing?top_up={attempt['id']}"
    assert _usd(c, org) == "0"
    # Refreshing before the customer authorized changes nothing, and says what to do still.
    early = c.post(f"/api/orgs/{org}/top-ups/{attempt['id']}/refresh").json()
    assert early["status"] == "requires_action" and early["next_action"]["type"] == "redirect"
    # The same Idempotency-Key returns the same attempt; no second payment is made.
    again = c.post(f"/api/orgs/{org}/top-ups",
                   {"amount_usd": "10", "payment_method_type": "alipay"},
                   headers={"Idempotency-Key": "ali-1"})
    assert again.json()["id"] == attempt["id"]
    wrong = c.http.get(action["url"].replace("client_secret=", "client_secret=x"))
    assert wrong.status_code == 404

    page = _authorize(c, action["url"])
    assert "succeeded" in page and f'href="{back}"' in page
    r = c.post(f"/api/orgs/{org}/top-ups/{attempt['id']}/refresh")
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    assert r.json()["credited"] and r.json()["next_action"] is None
    assert _usd(c, org) == "10"
    payment_id = _payment_of(any_dep, attempt["id"])
    for _ in range(3):  # the processor's event, and its redeliveries, credit nothing more
        _webhook(any_dep, c, payment_id, "payment_intent.succeeded")
    assert _usd(c, org) == "10"
    assert c.get(f"/api/orgs/{org}/receipts").json()["data"][0]["amount"]["usd"] == "10"
    assert c.get(f"/api/orgs/{org}/billing").json()["payment_methods"] == []
    with any_dep.engine.begin() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(sandbox_payments)).scalar_one()
    assert n == 1
    assert any_dep.verify() == []


def test_wechat_qr_code_credited_by_the_webhook(any_dep: Deployment) -> None:
    server = any_dep.start_server(**WALLETS)
    c, org = verified_owner(any_dep, server.base_url)
    r = c.post(f"/api/orgs/{org}/top-ups",
               {"amount_usd": "5.50", "payment_method_type": "wechat_pay"})
    assert r.status_code == 202, r.text
    attempt = r.json()
    action = attempt["next_action"]
    assert action["type"] == "qr_code" and action["qr_data"].startswith(
        "/sandbox/v1/wallet_payments/pi_")
    assert "WeChat Pay: pay 5.50 USD" in c.http.get(action["qr_data"]).text
    _authorize(c, action["qr_data"])
    # No refresh: the webhook alone credits it (twice delivered, once credited).
    payment_id = _payment_of(any_dep, attempt["id"])
    _webhook(any_dep, c, payment_id, "payment_intent.succeeded")
    _webhook(any_dep, c, payment_id, "payment_intent.succeeded")
    assert _usd(c, org) == "5.5"
    top_ups = c.get(f"/api/orgs/{org}/top-ups").json()["data"]
    assert [(t["status"], t["credited"]) for t in top_ups] == [("succeeded", True)]
    # A later refresh agrees and credits nothing more.
    assert c.post(f"/api/orgs/{org}/top-ups/{attempt['id']}/refresh").json()["credited"]
    assert _usd(c, org) == "5.5"
    assert any_dep.verify() == []


def test_declined_wallet_payments_never_suspend(sqlite_dep: Deployment) -> None:
    server = sqlite_dep.start_server(FAREGATE_FAILED_CHARGES_TO_SUSPEND="1", **WALLETS)
    c, org = verified_owner(sqlite_dep, server.base_url)
    for wallet in ("alipay", "wechat_pay", "alipay"):
        r = c.post(f"/api/orgs/{org}/top-ups",
                   {"amount_usd": "5", "payment_method_type": wallet})
        assert r.status_code == 202, r.text
        attempt = r.json()
        action = attempt["next_action"]
        page = _authorize(c, action["url"], "decline")
        assert "failed" in page
        payment_id = _payment_of(sqlite_dep, attempt["id"])
        _webhook(sqlite_dep, c, payment_id, "payment_intent.payment_failed")
        r = c.post(f"/api/orgs/{org}/top-ups/{attempt['id']}/refresh")
        assert r.json()["status"] == "failed" and not r.json()["credited"]
        assert r.json()["decline_code"] == "payment_intent_authentication_failure"
    billing = c.get(f"/api/orgs/{org}/billing").json()
    assert billing["status"] == "active" and billing["failed_charges"] == 0
    assert billing["balance"]["usd"] == "0"
    with sqlite_dep.engine.begin() as conn:
        assert conn.execute(sa.select(billing_states.c.suspended_at).where(
            billing_states.c.organization_id == org)).scalar() is None
    # Authorizing after the decline is refused: the payment is final.
    assert c.http.post(action["url"].split("?")[0], data={
        "client_secret": parse_qs(urlsplit(action["url"]).query)["client_secret"][0],
        "authorization": "authorize"}).status_code == 400
    assert sqlite_dep.verify() == []


def test_wallets_are_off_unless_enabled(sqlite_dep: Deployment) -> None:
    server = sqlite_dep.start_server(FAREGATE_STRIPE_WALLETS="alipay")
    c, org = verified_owner(sqlite_dep, server.base_url)
    assert c.get("/api/billing/config").json()["wallets"] == ["alipay"]
    r = c.post(f"/api/orgs/{org}/top-ups",
               {"amount_usd": "5", "payment_method_type": "wechat_pay"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "payment_method_type_unavailable"
    assert "WeChat Pay is not available" in r.json()["error"]["message"]
    r = c.post(f"/api/orgs/{org}/top-ups", {"amount_usd": "5", "payment_method_type": "alipay",
                                            "payment_method_id": "card_x"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "payment_method_id"
    for amount in ("4.99", "50.01"):
        r = c.post(f"/api/orgs/{org}/top-ups",
                   {"amount_usd": amount, "payment_method_type": "alipay"})
        assert r.status_code == 400, r.text
    assert _usd(c, org) == "0"
    assert sqlite_dep.query("SELECT COUNT(*) FROM charge_attempts")[0][0] == 0
