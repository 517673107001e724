"""Transfers, grants, idempotency, and the database's own refusal to overdraw."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from faregate.db.schema import accounts
from faregate.errors import Refused
from faregate.identity.users import create_user
from faregate.ledger.accounts import REVENUE, account_id, balance, org_account_id
from faregate.ledger.transfers import grant, post_transfer
from faregate.ledger.verify import verify


def test_grant_is_idempotent_and_audited(engine: Engine) -> None:
    with engine.begin() as conn:
        user = create_user(conn, "Grant@Example.COM")
        first = grant(conn, user.organization_id, 5_000_000_000, actor="cli:ops",
                      reason="welcome", idempotency_key="g-1")
        again = grant(conn, user.organization_id, 5_000_000_000, actor="cli:ops",
                      reason="welcome", idempotency_key="g-1")
        assert again.id == first.id
        with pytest.raises(Refused):
            grant(conn, user.organization_id, 6_000_000_000, actor="cli:ops", reason="x",
                  idempotency_key="g-1")
        acct = org_account_id(conn, user.organization_id)
        assert balance(conn, acct).balance_nano == 5_000_000_000
        assert first.actor == "cli:ops" and first.kind == "grant"
        assert verify(conn) == []
    assert user.email == "grant@example.com"


def test_guarded_account_cannot_be_overdrawn(engine: Engine) -> None:
    with engine.begin() as conn:
        user = create_user(conn, "o@example.com")
        grant(conn, user.organization_id, 100, actor="t", reason="t")
        acct = org_account_id(conn, user.organization_id)
        revenue = account_id(conn, REVENUE)
        post_transfer(conn, debit_account_id=acct, credit_account_id=revenue, amount_nano=60,
                      kind="adjustment", actor="t")
        with pytest.raises(Refused):
            post_transfer(conn, debit_account_id=acct, credit_account_id=revenue,
                          amount_nano=41, kind="adjustment", actor="t")
        assert balance(conn, acct).balance_nano == 40
    # The CHECK constraint holds even against code that skips the conditional update.
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(accounts.update().where(accounts.c.id == acct)
                     .values(debits_nano=accounts.c.debits_nano + 41))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(accounts.update().where(accounts.c.id == acct)
                     .values(held_nano=accounts.c.held_nano + 41))


def test_verify_reports_tampering(engine: Engine) -> None:
    with engine.begin() as conn:
        user = create_user(conn, "t@example.com")
        grant(conn, user.organization_id, 1000, actor="t", reason="t")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE accounts SET credits_nano = credits_nano + 1 "
                             "WHERE kind = 'org_credit'"))
    with engine.begin() as conn:
        problems = verify(conn)
    assert any("credits 1001 != sum of credit transfers 1000" in p for p in problems)
