"""Refunds and disputes take credit back (what was already spent is owed, and billing is
suspended until a payment settles it); redemption codes give credit once."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys

import sqlalchemy as sa

from faregate.db.runner import Database
from faregate.db.schema import redemption_codes, sandbox_payments
from faregate.payments.sandbox.webhooks import event_payload, sign_payload
from tests.e2e.api_client import ApiClient, verified_owner
from tests.e2e.test_billing_flow import _bind, _usd
from tests.harness import Deployment


def _secret(dep: Deployment) -> bytes:
    return (dep.data_dir / "secrets" / "sandbox_webhook_secret").read_bytes().strip()


def _payment(dep: Deployment) -> sa.Row[tuple[object, ...]]:
    with dep.engine.begin() as conn:
        return conn.execute(sa.select(sandbox_payments).where(
            sandbox_payments.c.capture_method == "automatic")
            .order_by(sandbox_payments.c.created_at.desc()).limit(1)).one()


def _send(c: ApiClient, dep: Deployment, event_type: str, payment_id: str) -> None:
    with dep.engine.begin() as conn:
        row = conn.execute(sa.select(sandbox_payments)
                           .where(sandbox_payments.c.id == payment_id)).one()
    payload = event_payload(event_type, row)
    for _ in range(2):  # redelivered: booked once
        r = c.http.post("/webhooks/sandbox", content=payload,
                        headers={"Stripe-Signature": sign_payload(payload, _secret(dep))})
        assert r.status_code == 200, r.text


def _refund(dep: Deployment, payment_id: str, minor: int) -> None:
    from faregate.payments.sandbox.processor import SandboxProcessor

    async def go() -> None:
        p = SandboxProcessor(Database(dep.engine), webhook_secret=_secret(dep))
        await p.refund(payment_id=payment_id, amount_minor=minor, idempotency_key=f"r{minor}")
    asyncio.run(go())


def test_refunds_of_unspent_and_spent_credit(any_dep: Deployment) -> None:
    server = any_dep.start_server()
    c, org = verified_owner(any_dep, server.base_url)
    assert _bind(c, org, "4242424242424242").status_code == 201
    assert c.post(f"/api/orgs/{org}/top-ups", {"amount_usd": "20"}).status_code == 201
    pid = _payment(any_dep).id
    _refund(any_dep, pid, 500)  # $5 of $20 back to the card
    _send(c, any_dep, "charge.refunded", pid)
    assert _usd(c, org) == "15"
    assert c.get(f"/api/orgs/{org}/billing").json()["status"] == "active"
    # Spend $10 of it, then the whole payment is refunded: $15 more comes back, of which only
    # $5 is left in the balance; $10 is owed and billing is suspended.
    with any_dep.engine.begin() as conn:
        from faregate.ledger.accounts import REVENUE, account_id, org_account_id
        from faregate.ledger.transfers import post_transfer
        post_transfer(conn, debit_account_id=org_account_id(conn, org),
                      credit_account_id=account_id(conn, REVENUE), amount_nano=10 * 10**9,
                      kind="adjustment", actor="test", reason="spent")
    _refund(any_dep, pid, 1500)
    _send(c, any_dep, "charge.refunded", pid)
    billing = c.get(f"/api/orgs/{org}/billing").json()
    assert billing["balance"]["usd"] == "0" and billing["status"] == "suspended"
    assert "already spent" in billing["suspended_reason"]
    assert any_dep.verify() == []
    # A new payment settles what is owed first, then billing is active again.
    r = c.post(f"/api/orgs/{org}/top-ups", {"amount_usd": "25"})
    assert r.status_code == 201, r.text
    billing = c.get(f"/api/orgs/{org}/billing").json()
    assert billing["balance"]["usd"] == "15" and billing["status"] == "active"
    kinds = [e["kind"] for e in c.get(f"/api/orgs/{org}/credit-history").json()["data"]]
    assert kinds.count("refund") == 2 and "owed_settled" in kinds
    assert any_dep.verify() == []


def test_dispute_withdraws_the_payment(any_dep: Deployment) -> None:
    server = any_dep.start_server()
    c, org = verified_owner(any_dep, server.base_url)
    assert _bind(c, org, "4242424242424242").status_code == 201
    assert c.post(f"/api/orgs/{org}/top-ups", {"amount_usd": "10"}).status_code == 201
    _send(c, any_dep, "charge.dispute.created", _payment(any_dep).id)
    assert _usd(c, org) == "0"
    assert c.get(f"/api/orgs/{org}/billing").json()["status"] == "active"  # nothing owed
    assert any_dep.verify() == []


def _cli(dep: Deployment, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "faregate.cli", *args], env=dep.env,
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def test_redemption_codes(any_dep: Deployment) -> None:
    server = any_dep.start_server()
    c, org = verified_owner(any_dep, server.base_url)
    made = json.loads(_cli(any_dep, "codes", "create", "7.50", "--count", "2", "--json"))
    first, second = made["codes"]
    r = c.post(f"/api/orgs/{org}/redeem", {"code": first.lower().replace("-", " ")})
    assert r.status_code == 200, r.text
    assert r.json()["amount"]["usd"] == "7.5" and r.json()["balance"]["usd"] == "7.5"
    r = c.post(f"/api/orgs/{org}/redeem", {"code": first})
    assert r.status_code == 400 and r.json()["error"]["code"] == "code_used"
    r = c.post(f"/api/orgs/{org}/redeem", {"code": "FG-AAAA-BBBB-CCCC-DDDD"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_code"
    with any_dep.engine.begin() as conn:
        conn.execute(redemption_codes.update().where(redemption_codes.c.redeemed_at.is_(None))
                     .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    r = c.post(f"/api/orgs/{org}/redeem", {"code": second})
    assert r.status_code == 400 and r.json()["error"]["code"] == "code_expired"
    listed = json.loads(_cli(any_dep, "codes", "list", "--json"))
    assert sorted(x["redeemed_by"] or "" for x in listed) == ["", org]
    assert first not in json.dumps(listed)
    kinds = [e["kind"] for e in c.get(f"/api/orgs/{org}/credit-history").json()["data"]]
    assert kinds == ["redemption"]
    assert any_dep.verify() == []


def test_operator_refund_then_the_processor_event(any_dep: Deployment) -> None:
    server = any_dep.start_server()
    c, org = verified_owner(any_dep, server.base_url)
    assert _bind(c, org, "4242424242424242").status_code == 201
    assert c.post(f"/api/orgs/{org}/top-ups", {"amount_usd": "10"}).status_code == 201
    pid = _payment(any_dep).id
    out = json.loads(_cli(any_dep, "payments", "refund", str(pid), "--amount", "4", "--json"))
    assert out == {"payment_id": pid, "owed_usd": "0"}
    assert _usd(c, org) == "6"
    _send(c, any_dep, "charge.refunded", str(pid))  # the processor's event: already booked
    assert _usd(c, org) == "6"
    with any_dep.engine.begin() as conn:
        refunded = conn.execute(sa.select(sandbox_payments.c.refunded_minor)
                                .where(sandbox_payments.c.id == pid)).scalar_one()
    assert refunded == 400
    assert any_dep.verify() == []
