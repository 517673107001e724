"""Searching users and organizations, and their overviews: what operators see, with no secret
(cards by brand and last 4, keys redacted, phones masked)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from faregate.api_keys.service import issue_key
from faregate.billing import risk
from faregate.console import actions, notes, search, views
from faregate.db.schema import organizations, payment_methods, users
from faregate.errors import NotFound
from faregate.identity.users import create_user
from tests.factories import funded_user
from tests.operators.conftest import make_operator

USD = 1_000_000_000


def test_search_by_fragment_id_and_pages(engine: Engine) -> None:
    with engine.begin() as conn:
        made = [create_user(conn, f"searcher{i}@corp.example") for i in range(5)]
        create_user(conn, "someone@else.example")
        conn.execute(organizations.update().where(organizations.c.id == made[0].organization_id)
                     .values(name="Acme Widgets"))
        first = search.search_users(conn, "SEARCHER", limit=3)
        assert len(first.data) == 3 and first.next_cursor is not None
        rest = search.search_users(conn, "searcher", limit=3, cursor=first.next_cursor)
        assert len(rest.data) == 2 and rest.next_cursor is None
        assert {u.id for u in first.data + rest.data} == {u.id for u in made}
        assert [u.email for u in search.search_users(conn, made[2].id).data] == \
            ["searcher2@corp.example"]
        assert search.search_users(conn, "100%_").data == []  # wildcards are literal
        assert [o.id for o in search.search_orgs(conn, "acme").data] == \
            [made[0].organization_id]
        by_member = search.search_orgs(conn, "else.example").data
        assert len(by_member) == 1 and by_member[0].members == 1


def test_org_overview_shows_everything_but_secrets(engine: Engine) -> None:
    op = make_operator(engine, "root@example.com").operator
    with engine.begin() as conn:
        user = funded_user(conn, 4 * USD)
        org = user.organization_id
        key = issue_key(conn, organization_id=org, user_id=user.id, name="k", pepper=b"p")
        conn.execute(payment_methods.insert().values(
            id="pm_row", organization_id=org, processor="sandbox", method_id="pm_secretish",
            brand="visa", last4="4242", exp_month=12, exp_year=2040, fingerprint="f" * 32,
            is_default=True, created_at=dt.datetime.now(dt.UTC)))
        risk.record(conn, organization_id=org, ip="10.0.0.1", action="bind_card",
                    decision="review", reason="country mismatch")
        actions.adjust_credit(conn, org, -USD, reason="fix", actor="operator:x")
        notes.add_note(conn, target=f"org:{org}", body="VIP", operator_id=op.id,
                       actor=f"operator:{op.id}")
        o = views.org_overview(conn, org)
    assert o.balance.balance_nano == 3 * USD and o.deactivation is None
    assert [e.kind for e in o.ledger] == ["adjustment", "grant"]
    assert o.usage_30d is None
    assert [(m.brand, m.last4) for m in o.payment_methods] == [("visa", "4242")]
    assert [(k.id, k.redacted) for k in o.keys] == [(key.id, key.redacted)]
    assert key.key not in repr(o)
    assert "pm_secretish" not in repr(o) and "f" * 32 not in repr(o)
    assert [(r.decision, r.reason) for r in o.risk_decisions] == [("review", "country mismatch")]
    assert [(m.email, m.role) for m in o.members] == [(user.email, "owner")]
    assert [n.body for n in o.notes] == ["VIP"]
    assert {e.action for e in o.audit} >= {"credit.adjusted", "note.added"}
    with engine.begin() as conn, pytest.raises(NotFound):
        views.org_overview(conn, "org_missing")
    with engine.begin() as conn:
        page = views.ledger_page(conn, org, limit=1)
        assert [e.kind for e in page] == ["adjustment"]
        assert [e.kind for e in views.ledger_page(conn, org, before_id=page[0].id)] == ["grant"]


def test_user_overview_masks_the_phone(engine: Engine) -> None:
    with engine.begin() as conn:
        user = funded_user(conn)
        conn.execute(users.update().where(users.c.id == user.id).values(
            phone_hash="h" * 64, phone_masked="+44 74** ***456",
            phone_verified_at=dt.datetime.now(dt.UTC)))
        actions.set_user_active(conn, user.id, active=False, reason="abuse", actor="t")
        u = views.user_overview(conn, user.id)
        row = conn.execute(sa.select(users.c.phone_hash).where(users.c.id == user.id)).one()
    assert u.phone_masked == "+44 74** ***456" and row.phone_hash not in repr(u)
    assert u.deactivation is not None and u.deactivation.reason == "abuse"
    assert [o.id for o in u.organizations] == [user.organization_id]
    assert [e.action for e in u.audit] == ["user.deactivated"]
