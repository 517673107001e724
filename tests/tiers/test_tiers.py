"""Usage tiers against a real database (SQLite and PostgreSQL): what counts as paid (payments
less refunds, not grants), the earned tier by amount and age, and that it only rises."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from faregate.billing.refunds import take_back
from faregate.billing.settle import payment_succeeded
from faregate.db.schema import organizations, usage_tiers
from faregate.identity.users import create_user
from faregate.ledger.transfers import grant
from faregate.payments.processor import Charge
from faregate.tiers.service import amount_paid, compute_tier, raise_earned_tiers, raise_tier

USD = 1_000_000_000


def _pay(conn: sa.Connection, org: str, payment_id: str, cents: int) -> None:
    charge = Charge("succeeded", payment_id, cents, "usd", None, None)
    payment_succeeded(conn, processor="sandbox", charge=charge, organization_id=org,
                      reinstate=False)


def test_paid_counts_payments_less_refunds_and_not_grants(engine: Engine) -> None:
    with engine.begin() as conn:
        org = create_user(conn, "payer@example.com", tier_override=None).organization_id
        grant(conn, org, 500 * USD, actor="test", reason="not a payment")
        assert amount_paid(conn, org) == 0 and compute_tier(conn, org) == 0
        _pay(conn, org, "pi_1", 600)  # $6: tier 1 at once (raised by the payment)
        assert amount_paid(conn, org) == 6 * USD
        assert conn.execute(sa.select(organizations.c.tier)
                            .where(organizations.c.id == org)).scalar() == 1
        take_back(conn, processor="sandbox", organization_id=org, reference="pi_1",
                  total_minor=600, kind="refund", actor="test")
        assert amount_paid(conn, org) == 0 and compute_tier(conn, org) == 0
        assert raise_tier(conn, org) is None  # never lowered
        assert conn.execute(sa.select(organizations.c.tier)
                            .where(organizations.c.id == org)).scalar() == 1


def test_age_thresholds_are_met_by_the_hourly_pass(engine: Engine) -> None:
    with engine.begin() as conn:
        org = create_user(conn, "old@example.com", tier_override=None).organization_id
        _pay(conn, org, "pi_2", 6_000)  # $60: tier 2 needs 7 days as well
        assert compute_tier(conn, org) == 1
        conn.execute(organizations.update().where(organizations.c.id == org).values(
            created_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=8)))
        assert compute_tier(conn, org) == 2
        assert raise_earned_tiers(conn) == 1
        assert raise_earned_tiers(conn) == 0
        # Thresholds are the operator's: lowering tier 3's to $50 lets it in.
        conn.execute(usage_tiers.update().where(usage_tiers.c.tier == 3)
                     .values(min_paid_nano=50 * USD))
        assert raise_tier(conn, org) == 3
