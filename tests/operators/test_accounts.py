"""Operator accounts: enrolment shown once and stored only encrypted or hashed, roles, the last
enabled admin, disabling ends sessions, TOTP reset, passwords — each change audited with
before/after."""

from __future__ import annotations

import datetime as dt
import urllib.parse

import pyotp
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from faregate.db.schema import operator_recovery_codes, operators
from faregate.errors import InvalidRequest, Refused
from faregate.operators import accounts, recovery_codes, sessions
from faregate.operators.accounts import OperatorChange
from tests.operators.conftest import CIPHER, SECRET, audit, make_operator


def _session(engine: Engine, operator_id: str) -> str:
    with engine.begin() as conn:
        return sessions.create_session(conn, operator_id=operator_id, ip="10.0.0.1",
                                       user_agent=None, ttl_s=3600, secret=SECRET)[1]


def _alive(engine: Engine, token: str) -> bool:
    with engine.begin() as conn:
        return sessions.authenticate(conn, token, secret=SECRET, idle_s=600) is not None


def test_create_returns_the_enrolment_once_and_stores_no_secret(engine: Engine) -> None:
    made = make_operator(engine, " Root@Example.com", name="  Root   Operator ")
    op, e = made.operator, made.enrolment
    assert (op.email, op.name, op.role, op.active) == ("root@example.com", "Root Operator",
                                                       "admin", True)
    assert not op.totp_confirmed
    assert op.recovery_codes_left == 10
    assert op.id.startswith("op_")
    uri = urllib.parse.urlparse(e.otpauth_uri)
    assert uri.scheme == "otpauth" and uri.netloc == "totp"
    totp = pyotp.parse_uri(e.otpauth_uri)
    assert isinstance(totp, pyotp.TOTP)
    assert (totp.secret, totp.digits, totp.interval, totp.issuer, totp.name) == (
        e.secret, 6, 30, "Faregate", "root@example.com")
    assert len(e.secret) == 32  # 160 bits of base32
    assert len(set(e.recovery_codes)) == 10
    assert "secret" not in repr(made) and e.secret not in repr(made)
    with engine.begin() as conn:
        row = conn.execute(sa.select(operators)).one()
        stored = " ".join(str(v) for v in row) + " ".join(
            str(v) for r in conn.execute(sa.select(operator_recovery_codes)) for v in r)
    assert e.secret not in stored
    assert all(c not in stored and c.replace("-", "") not in stored for c in e.recovery_codes)
    assert CIPHER.decrypt(row.totp_secret_encrypted) == e.secret
    [event] = audit(engine, "operator.created")
    assert (event.actor, event.target) == ("test", op.id)
    assert event.detail == {"before": None, "after": {
        "email": "root@example.com", "name": "Root Operator", "role": "admin",
        "disabled": False}}


def test_emails_are_unique_and_valid(engine: Engine) -> None:
    make_operator(engine, "root@example.com")
    with pytest.raises(Refused) as taken:
        make_operator(engine, "ROOT@example.com", "support")
    assert taken.value.code == "email_taken"
    with pytest.raises(InvalidRequest):
        make_operator(engine, "not an address")


def test_role_and_name_changes_are_audited_with_before_and_after(engine: Engine) -> None:
    make_operator(engine, "root@example.com")
    other = make_operator(engine, "helper@example.com", "support").operator
    with engine.begin() as conn:
        changed = accounts.change_operator(conn, other.id,
                                           OperatorChange(role="admin", name="Helper"),
                                           actor="operator:op_root", ip="10.1.1.1")
        unchanged = accounts.change_operator(conn, other.id, OperatorChange(role="admin"),
                                             actor="operator:op_root")
    assert (changed.role, changed.name) == ("admin", "Helper")
    assert unchanged == changed
    [event] = audit(engine, "operator.updated")  # no event for a change that changed nothing
    assert (event.actor, event.target, event.ip) == ("operator:op_root", other.id, "10.1.1.1")
    assert event.detail == {"before": {"role": "support", "name": None},
                            "after": {"role": "admin", "name": "Helper"}}


def test_the_last_enabled_admin_cannot_be_disabled_or_demoted(engine: Engine) -> None:
    root = make_operator(engine, "root@example.com").operator
    support = make_operator(engine, "support@example.com", "support").operator
    for change in (OperatorChange(disabled=True), OperatorChange(role="support")):
        with pytest.raises(Refused) as refused, engine.begin() as conn:
            accounts.change_operator(conn, root.id, change, actor="test")
        assert refused.value.code == "last_admin"
    # A disabled admin does not count as the other admin.
    second = make_operator(engine, "second@example.com").operator
    with engine.begin() as conn:
        accounts.change_operator(conn, second.id, OperatorChange(disabled=True), actor="test")
    with pytest.raises(Refused), engine.begin() as conn:
        accounts.change_operator(conn, root.id, OperatorChange(role="support"), actor="test")
    # With another enabled admin, the first may step down, and then not the second.
    with engine.begin() as conn:
        accounts.change_operator(conn, second.id, OperatorChange(disabled=False), actor="test")
        assert accounts.change_operator(conn, root.id, OperatorChange(role="support"),
                                        actor="test").role == "support"
    with pytest.raises(Refused), engine.begin() as conn:
        accounts.change_operator(conn, second.id, OperatorChange(disabled=True), actor="test")
    with engine.begin() as conn:  # support operators can always be disabled
        assert not accounts.change_operator(conn, support.id, OperatorChange(disabled=True),
                                            actor="test").active
        roles = {o.email: (o.role, o.active) for o in accounts.list_operators(conn)}
    assert roles == {"root@example.com": ("support", True),
                     "support@example.com": ("support", False),
                     "second@example.com": ("admin", True)}


def test_disabling_ends_the_sessions_and_enabling_does_not_revive_them(engine: Engine) -> None:
    make_operator(engine, "root@example.com")
    helper = make_operator(engine, "helper@example.com", "support").operator
    token = _session(engine, helper.id)
    assert _alive(engine, token)
    with engine.begin() as conn:
        disabled = accounts.change_operator(conn, helper.id, OperatorChange(disabled=True),
                                            actor="test")
    assert disabled.disabled_at is not None
    assert not _alive(engine, token)
    with engine.begin() as conn:
        accounts.change_operator(conn, helper.id, OperatorChange(disabled=False), actor="test")
    assert not _alive(engine, token)
    events = audit(engine, "operator.updated")
    assert [e.detail for e in reversed(events)] == [
        {"before": {"disabled": False}, "after": {"disabled": True}},
        {"before": {"disabled": True}, "after": {"disabled": False}}]


def test_a_session_ends_as_soon_as_its_operator_is_disabled(engine: Engine) -> None:
    make_operator(engine, "root@example.com")
    helper = make_operator(engine, "helper@example.com", "support").operator
    token = _session(engine, helper.id)
    with engine.begin() as conn:  # even if the sessions were not revoked
        conn.execute(operators.update().where(operators.c.id == helper.id)
                     .values(disabled_at=dt.datetime.now(dt.UTC)))
    assert not _alive(engine, token)


def test_reset_totp_replaces_secret_and_codes_and_ends_sessions(engine: Engine) -> None:
    made = make_operator(engine, "root@example.com")
    op = made.operator
    token = _session(engine, op.id)
    with engine.begin() as conn:
        conn.execute(operators.update().where(operators.c.id == op.id)
                     .values(totp_confirmed_at=dt.datetime.now(dt.UTC), totp_last_step=123))
        done = accounts.reset_totp(conn, op.id, cipher=CIPHER, secret=SECRET, actor="cli:root")
        row = conn.execute(sa.select(operators).where(operators.c.id == op.id)).one()
        old_code_works = recovery_codes.consume(conn, op.id, made.enrolment.recovery_codes[0],
                                                secret=SECRET)
        new_code_works = recovery_codes.consume(conn, op.id, done.enrolment.recovery_codes[0],
                                                secret=SECRET)
    assert done.enrolment.secret != made.enrolment.secret
    assert CIPHER.decrypt(row.totp_secret_encrypted) == done.enrolment.secret
    assert row.totp_confirmed_at is None and row.totp_last_step is None
    assert not done.operator.totp_confirmed
    assert set(done.enrolment.recovery_codes).isdisjoint(made.enrolment.recovery_codes)
    assert not old_code_works
    assert new_code_works
    assert not _alive(engine, token)
    [event] = audit(engine, "operator.totp_reset")
    assert event.actor == "cli:root"
    assert event.detail == {"sessions_ended": 1, "before": {"totp_confirmed": True},
                            "after": {"totp_confirmed": False}}


def test_set_password_ends_other_sessions(engine: Engine) -> None:
    op = make_operator(engine, "root@example.com").operator
    kept, ended = _session(engine, op.id), _session(engine, op.id)
    with engine.begin() as conn:
        keep_id = sessions.authenticate(conn, kept, secret=SECRET, idle_s=600)
        assert keep_id is not None
        assert accounts.set_password(conn, op.id, "new-hash", actor="test",
                                     keep_session_id=keep_id.session_id)
        assert not accounts.set_password(conn, op.id, "newer-hash", actor="test",
                                         expected_hash="not-the-stored-one")
        assert accounts.password_hash_of(conn, op.id) == "new-hash"
    assert _alive(engine, kept)
    assert not _alive(engine, ended)
    [event] = audit(engine, "operator.password_set")
    assert event.detail == {"sessions_ended": 1, "before": None, "after": None}
    assert "new-hash" not in str(event)


def test_password_policy_applies(engine: Engine) -> None:
    with pytest.raises(InvalidRequest) as weak:
        accounts.hash_new_password("short", email="root@example.com", min_length=10)
    assert weak.value.code == "weak_password"
    with pytest.raises(InvalidRequest):
        accounts.hash_new_password("root-example-passphrase", email="root@example.com",
                                   min_length=10)
