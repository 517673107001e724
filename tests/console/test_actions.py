"""The console's actions against a real database (SQLite and PostgreSQL): each is a ledger
transfer or a row change with one audit event carrying actor, target and before/after; taking
credit away never goes below what is available; deactivation reaches the key look-up, sign-in
and sessions; the audit trail refuses to be changed."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from faregate.api_keys.service import find_principal, issue_key
from faregate.audit.trail import AuditEvent
from faregate.console import actions, notes
from faregate.console.audit_search import AuditQuery, search_events
from faregate.db.runner import Database
from faregate.db.schema import audit_events, users
from faregate.errors import AuthenticationFailed, InvalidRequest, NotFound, Refused
from faregate.identity import sessions
from faregate.identity.signin import sign_in
from faregate.kit.crypto import hash_api_key
from faregate.ledger.accounts import balance, org_account_id
from faregate.ledger.verify import verify
from tests.factories import funded_user
from tests.identity.conftest import PASSWORD, SECRET, new_user
from tests.identity.conftest import RULES as AUTH_RULES
from tests.operators.conftest import make_operator

USD = 1_000_000_000
ACTOR = "operator:op_test"
PEPPER = b"test-pepper"
RULES = dataclasses.replace(AUTH_RULES, sign_in_attempts_per_account=10)


def _events(engine: Engine, action: str) -> list[AuditEvent]:
    with engine.begin() as conn:
        return search_events(conn, AuditQuery(action=action)).data


def _available(engine: Engine, org: str) -> int:
    with engine.begin() as conn:
        return balance(conn, org_account_id(conn, org)).available_nano


def test_grant_and_adjust_are_audited_transfers(engine: Engine) -> None:
    with engine.begin() as conn:
        user = funded_user(conn)
        org = user.organization_id
        done = actions.grant_credit(conn, org, 2 * USD, reason="welcome", actor=ACTOR,
                                    ip="10.0.0.9", idempotency_key="g-1")
        assert (done.before.balance_nano, done.after.balance_nano) == (0, 2 * USD)
        assert done.transfer.kind == "grant" and done.transfer.reason == "welcome"
        # The same key again grants nothing more and records nothing more.
        again = actions.grant_credit(conn, org, 2 * USD, reason="welcome", actor=ACTOR,
                                     idempotency_key="g-1")
        assert again.transfer.id == done.transfer.id
        down = actions.adjust_credit(conn, org, -USD, reason="goodwill reversed", actor=ACTOR)
        assert down.after.balance_nano == USD and down.transfer.kind == "adjustment"
        up = actions.adjust_credit(conn, org, USD // 2, reason="overcharge", actor=ACTOR)
        assert up.after.balance_nano == USD + USD // 2
    [granted] = _events(engine, "credit.granted")
    assert (granted.actor, granted.target, granted.organization_id, granted.ip) == (
        ACTOR, f"org:{org}", org, "10.0.0.9")
    assert granted.detail is not None
    assert granted.detail["before"] == {"balance_nano": 0, "available_nano": 0}
    assert granted.detail["after"] == {"balance_nano": 2 * USD, "available_nano": 2 * USD}
    assert granted.detail["amount_nano"] == 2 * USD and granted.detail["reason"] == "welcome"
    adjusted = _events(engine, "credit.adjusted")
    assert [e.detail["amount_nano"] for e in adjusted if e.detail] == [USD // 2, -USD]
    with engine.begin() as conn:
        assert verify(conn) == []


def test_adjust_never_goes_below_what_is_available(engine: Engine) -> None:
    with engine.begin() as conn:
        org = funded_user(conn, 3 * USD).organization_id
    with engine.begin() as conn, pytest.raises(Refused) as refused:
        actions.adjust_credit(conn, org, -4 * USD, reason="too much", actor=ACTOR)
    assert refused.value.code == "insufficient_balance" and "$3" in refused.value.message
    with engine.begin() as conn:
        first = actions.adjust_credit(conn, org, -USD, reason="part", actor=ACTOR,
                                      idempotency_key="a-1")
        actions.adjust_credit(conn, org, -2 * USD, reason="the rest", actor=ACTOR)
    assert _available(engine, org) == 0
    with engine.begin() as conn:  # a replay returns the first transfer, with nothing left
        again = actions.adjust_credit(conn, org, -USD, reason="part", actor=ACTOR,
                                      idempotency_key="a-1")
        assert again.replayed and again.transfer.id == first.transfer.id
    with engine.begin() as conn:
        for bad in (0,):
            with pytest.raises(InvalidRequest):
                actions.adjust_credit(conn, org, bad, reason="zero", actor=ACTOR)
        with pytest.raises(InvalidRequest):
            actions.grant_credit(conn, org, USD, reason="  ", actor=ACTOR)
        with pytest.raises(NotFound):
            actions.grant_credit(conn, "org_missing", USD, reason="x", actor=ACTOR)
    assert len(_events(engine, "credit.adjusted")) == 2


def test_deactivating_an_organization_reaches_its_keys(engine: Engine) -> None:
    with engine.begin() as conn:
        user = funded_user(conn, USD)
        key = issue_key(conn, organization_id=user.organization_id, user_id=user.id,
                        name="k", pepper=PEPPER)
        digest = hash_api_key(key.key, PEPPER)
        done = actions.set_org_active(conn, user.organization_id, active=False,
                                      reason="chargeback fraud", actor=ACTOR)
        assert done.deactivated_at is not None and done.reason == "chargeback fraud"
        principal = find_principal(conn, digest)
        assert principal is not None and principal.deactivated == "organization"
        with pytest.raises(Refused):
            actions.set_org_active(conn, user.organization_id, active=False, reason="again",
                                   actor=ACTOR)
        actions.set_org_active(conn, user.organization_id, active=True, reason="resolved",
                               actor=ACTOR)
        principal = find_principal(conn, digest)
        assert principal is not None and principal.deactivated is None
    [off] = _events(engine, "org.deactivated")
    assert off.target == f"org:{user.organization_id}" and off.detail is not None
    assert off.detail["before"] == {"deactivated": False, "deactivated_reason": None}
    assert off.detail["after"] == {"deactivated": True, "deactivated_reason": "chargeback fraud"}
    [on] = _events(engine, "org.reactivated")
    assert on.detail is not None and on.detail["after"]["deactivated"] is False


async def test_a_deactivated_user_cannot_sign_in_and_loses_sessions(engine: Engine,
                                                                    db: Database) -> None:
    user = new_user(engine, "ada@example.com", verified=True)
    signed = await sign_in(db, email="ada@example.com", password=PASSWORD, ip="10.0.0.1",
                           user_agent=None, previous_session_id=None, rules=RULES,
                           secret=SECRET)
    with engine.begin() as conn:
        key = issue_key(conn, organization_id=user.organization_id, user_id=user.id,
                        name="mine", pepper=PEPPER)
        actions.set_user_active(conn, user.id, active=False, reason="abuse", actor=ACTOR)
        assert sessions.authenticate(conn, signed.token, secret=SECRET, idle_s=600) is None
        principal = find_principal(conn, hash_api_key(key.key, PEPPER))
        assert principal is not None and principal.deactivated == "user"
    with pytest.raises(AuthenticationFailed) as refused:
        await sign_in(db, email="ada@example.com", password=PASSWORD, ip="10.0.0.1",
                      user_agent=None, previous_session_id=None, rules=RULES, secret=SECRET)
    assert refused.value.code == "account_deactivated"
    # The wrong password still gets the usual answer: deactivation is told only to the owner.
    with pytest.raises(AuthenticationFailed) as wrong:
        await sign_in(db, email="ada@example.com", password="not the password", ip="10.0.0.2",
                      user_agent=None, previous_session_id=None, rules=RULES, secret=SECRET)
    assert wrong.value.code == "invalid_credentials"
    with engine.begin() as conn:
        actions.set_user_active(conn, user.id, active=True, reason="appeal", actor=ACTOR)
    again = await sign_in(db, email="ada@example.com", password=PASSWORD, ip="10.0.0.3",
                          user_agent=None, previous_session_id=None, rules=RULES, secret=SECRET)
    assert again.user.id == user.id
    [off] = _events(engine, "user.deactivated")
    assert off.target == f"user:{user.id}" and off.detail is not None
    assert off.detail["sessions_ended"] == 1


def test_reset_phone_and_codes_record_no_secret(engine: Engine) -> None:
    with engine.begin() as conn:
        user = funded_user(conn)
        conn.execute(users.update().where(users.c.id == user.id).values(
            phone_hash="h" * 64, phone_masked="+44 74** ***456",
            phone_verified_at=dt.datetime.now(dt.UTC)))
        actions.reset_phone(conn, user.id, reason="lost their phone", actor=ACTOR)
        row = conn.execute(sa.select(users).where(users.c.id == user.id)).one()
        assert (row.phone_hash, row.phone_masked, row.phone_verified_at) == (None, None, None)
        codes = actions.issue_codes(conn, amount_nano=5 * USD, count=2, expires_at=None,
                                    actor=ACTOR, secret=SECRET)
    [reset] = _events(engine, "user.phone_reset")
    assert reset.detail is not None
    assert reset.detail["before"] == {"phone_masked": "+44 74** ***456", "phone_verified": True}
    assert "h" * 64 not in str(reset.detail)
    [issued] = _events(engine, "codes.issued")
    assert issued.detail is not None and issued.detail["after"]["count"] == 2
    assert all(code not in str(issued.detail) for code in codes)
    assert issued.detail["after"]["ends_with"] == [c[-4:] for c in codes]


def test_notes_are_added_and_audited(engine: Engine) -> None:
    op = make_operator(engine, "help@example.com", "support").operator
    with engine.begin() as conn:
        user = funded_user(conn)
        note = notes.add_note(conn, target=f"user:{user.id}", body=" called about a refund ",
                              operator_id=op.id, actor=f"operator:{op.id}")
        assert note.body == "called about a refund"
        assert note.organization_id == user.organization_id
        with pytest.raises(NotFound):
            notes.add_note(conn, target="org:org_missing", body="x", operator_id=op.id,
                           actor="t")
        with pytest.raises(InvalidRequest):
            notes.add_note(conn, target="team:x", body="x", operator_id=op.id, actor="t")
        assert [n.id for n in notes.list_notes(conn, [f"user:{user.id}"])] == [note.id]
    [added] = _events(engine, "note.added")
    assert added.actor == f"operator:{op.id}" and added.target == f"user:{user.id}"
    assert added.detail is not None and added.detail["after"]["note_id"] == note.id


def test_audit_search_filters_and_pages(engine: Engine) -> None:
    with engine.begin() as conn:
        org = funded_user(conn).organization_id
        for i in range(5):
            actions.grant_credit(conn, org, USD, reason=f"r{i}", actor=ACTOR)
        actions.adjust_credit(conn, org, -USD, reason="x", actor="cli:alice")
    with engine.begin() as conn:
        first = search_events(conn, AuditQuery(action="credit.*", target=f"org:{org}"),
                              limit=4)
        assert len(first.data) == 4 and first.next_cursor is not None
        assert first.data[0].action == "credit.adjusted"  # newest first
        rest = search_events(conn, AuditQuery(action="credit.*", target=f"org:{org}"),
                             limit=4, before_id=first.next_cursor)
        assert len(rest.data) == 2 and rest.next_cursor is None
        assert [e.actor for e in search_events(conn, AuditQuery(actor="cli:alice")).data] == \
            ["cli:alice"]
        later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
        assert search_events(conn, AuditQuery(since=later)).data == []
        assert len(search_events(conn, AuditQuery(until=later, organization_id=org)).data) == 6


def test_the_audit_trail_cannot_be_changed(engine: Engine) -> None:
    with engine.begin() as conn:
        org = funded_user(conn).organization_id
        actions.grant_credit(conn, org, USD, reason="x", actor=ACTOR)
    for statement in (audit_events.update().values(actor="someone else"),
                      audit_events.delete()):
        with pytest.raises(sa.exc.DBAPIError), engine.begin() as conn:
            conn.execute(statement)
    assert [e.actor for e in _events(engine, "credit.granted")] == [ACTOR]
