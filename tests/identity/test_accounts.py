"""Signing up (counted per address, duplicates refused after counting), verification email,
signing out, changing the password (wrong current password counted and audited)."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from faregate.db.runner import Database
from faregate.db.schema import email_tokens, organizations, users
from faregate.errors import InvalidRequest, RateLimited, Refused
from faregate.identity import sessions as session_service
from faregate.identity.accounts import SignedUp, change_password, sign_out, sign_up
from faregate.identity.passwords import verify_password
from faregate.identity.projects import get_default_project
from faregate.identity.rules import AuthRules
from faregate.identity.signin import sign_in
from faregate.identity.users import User
from faregate.notify.email import EmailMessage
from tests.identity.conftest import PASSWORD, RULES, SECRET, audit, new_user


async def _sign_up(db: Database, email: str, *, password: str = PASSWORD, ip: str = "10.1.0.1",
                   name: str | None = None) -> SignedUp:
    return await sign_up(db, email=email, password=password, name=name, ip=ip,
                         user_agent="pytest", previous_session_id=None, rules=RULES,
                         secret=SECRET)


def _token(text: str, path: str) -> str:
    match = re.search(re.escape(path) + r"\?token=([A-Za-z0-9_-]+)", text)
    assert match, text
    return match.group(1)


async def test_sign_up_creates_a_signed_in_user(engine: Engine, db: Database) -> None:
    done = await _sign_up(db, " Ada@Example.com ", name="Ada  Lovelace")
    assert done.user.email == "ada@example.com"
    assert done.email.to == "ada@example.com"
    token = _token(done.email.text, "https://fg.example.com/verify-email")
    with engine.begin() as conn:
        row = conn.execute(sa.select(users).where(users.c.id == done.user.id)).one()
        assert verify_password(row.password_hash, PASSWORD)
        assert row.email_verified_at is None
        assert conn.execute(sa.select(organizations.c.name).where(
            organizations.c.id == done.user.organization_id)).scalar_one() == \
            "Ada Lovelace's organization"
        assert get_default_project(conn, done.user.organization_id).is_default
        assert session_service.authenticate(conn, done.token, secret=SECRET,
                                            idle_s=60) is not None
        stored = conn.execute(sa.select(email_tokens.c.token_hash)).scalars().all()
    assert len(stored) == 1
    assert token not in stored  # only the keyed hash is kept
    assert [e.action for e in audit(engine, "auth.signed_up")] == ["auth.signed_up"]


async def test_sign_up_refusals(engine: Engine, db: Database) -> None:
    await _sign_up(db, "ada@example.com", ip="10.1.1.1")
    with pytest.raises(Refused) as taken:
        await _sign_up(db, "ADA@example.com", ip="10.1.1.1")
    assert taken.value.message == ("An account with this email already exists. Sign in or "
                                   "reset your password.")
    assert taken.value.status == 409
    with pytest.raises(InvalidRequest, match="not a valid email"):
        await _sign_up(db, "ada-at-example.com", ip="10.1.1.1")
    with pytest.raises(InvalidRequest, match="at least 10 characters") as weak:
        await _sign_up(db, "bob@example.com", password="short", ip="10.1.1.1")
    assert weak.value.code == "weak_password"
    # The refused duplicate counted against the address: one more sign-up is allowed.
    await _sign_up(db, "carl@example.com", ip="10.1.1.1")
    with pytest.raises(RateLimited, match="Too many sign-ups from your network"):
        await _sign_up(db, "dora@example.com", ip="10.1.1.1")
    await _sign_up(db, "dora@example.com", ip="10.1.1.2")
    with engine.begin() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(users)).scalar_one()
    assert count == 3


async def test_sign_out_ends_the_session(engine: Engine, db: Database) -> None:
    done = await _sign_up(db, "ada@example.com")
    with engine.begin() as conn:
        sign_out(conn, session_id=done.session_id, user_id=done.user.id,
                 organization_id=done.user.organization_id, ip="10.1.0.1")
    with engine.begin() as conn:
        assert session_service.authenticate(conn, done.token, secret=SECRET,
                                            idle_s=60) is None
    assert len(audit(engine, "auth.signed_out")) == 1


async def _change(db: Database, user: User, session_id: str, current: str, new: str, *,
                  rules: AuthRules = RULES) -> EmailMessage:
    return await change_password(db, user_id=user.id, email=user.email, session_id=session_id,
                                 current_password=current, new_password=new, ip="10.1.2.1",
                                 rules=rules, secret=SECRET)


async def test_change_password(engine: Engine, db: Database) -> None:
    user = new_user(engine, "ada@example.com")
    signed = [await sign_in(db, email=user.email, password=PASSWORD, ip="10.1.2.1",
                            user_agent=None, previous_session_id=None, rules=RULES,
                            secret=SECRET) for _ in range(2)]
    current = signed[0].session_id
    new = "a brand new passphrase"
    with pytest.raises(InvalidRequest, match="cannot contain your email"):
        await _change(db, user, current, PASSWORD, "ada-is-my-new-password")
    with pytest.raises(InvalidRequest, match="current password is not correct") as wrong:
        await _change(db, user, current, "not it at all", new)
    assert wrong.value.param == "current_password"
    [failed] = audit(engine, "auth.password_change_failed")
    assert failed.target == user.id
    # The wrong guess counted like a failed sign-in: with the two sign-ins, the account's
    # three attempts are used up.
    with pytest.raises(RateLimited):
        await _change(db, user, current, PASSWORD, new)
    notice = await _change(db, user, current, PASSWORD, new,
                           rules=AuthRules(sign_in_attempts_per_account=10))
    assert notice.to == "ada@example.com"
    assert "password" in notice.subject
    assert new not in notice.text
    with engine.begin() as conn:
        assert session_service.authenticate(conn, signed[0].token, secret=SECRET,
                                            idle_s=60) is not None
        assert session_service.authenticate(conn, signed[1].token, secret=SECRET,
                                            idle_s=60) is None
        stored = conn.execute(sa.select(users.c.password_hash)
                              .where(users.c.id == user.id)).scalar_one()
    assert verify_password(stored, new)
    [changed] = audit(engine, "auth.password_changed")
    assert changed.detail == {"other_sessions_ended": 1}
