"""Credit expiry through HTTP: the billing overview shows the credit about to expire; once the
worker has expired it, the balance is empty and the credit history shows the expiry."""

from __future__ import annotations

import asyncio
import datetime as dt

from faregate.db.runner import Database
from faregate.worker.credit_jobs import settle_credit_lots
from tests.e2e.api_client import verified_owner
from tests.e2e.test_billing_flow import _bind
from tests.harness import Deployment


def test_top_up_expires_after_twelve_months(any_dep: Deployment) -> None:
    server = any_dep.start_server()
    c, org = verified_owner(any_dep, server.base_url)
    assert _bind(c, org, "4242424242424242").status_code == 201
    assert c.post(f"/api/orgs/{org}/top-ups", {"amount_usd": "10"}).status_code == 201
    [upcoming] = c.get(f"/api/orgs/{org}/billing").json()["upcoming_expirations"]
    assert upcoming["kind"] == "paid" and upcoming["amount"]["usd"] == "10"
    when = dt.datetime.fromisoformat(upcoming["expires_at"])
    assert dt.timedelta(days=364) < when - dt.datetime.now(dt.UTC) < dt.timedelta(days=367)

    db = Database(any_dep.engine)
    assert asyncio.run(settle_credit_lots(db, paid_months=12,
                                          now=when - dt.timedelta(seconds=1))) == 0
    assert asyncio.run(settle_credit_lots(db, paid_months=12, now=when)) == 10 * 10**9
    billing = c.get(f"/api/orgs/{org}/billing").json()
    assert billing["balance"]["usd"] == "0" and billing["upcoming_expirations"] == []
    latest = c.get(f"/api/orgs/{org}/credit-history").json()["data"][0]
    assert latest["kind"] == "credit_expiry" and latest["amount"]["usd"] == "-10"
    assert "expired" in latest["reason"]
    assert any_dep.verify() == []
