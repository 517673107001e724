"""Email verification and password reset links: single use, expiry, superseded by newer ones,
kept only as hashes; reset requests that do not tell whether an account exists."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from faregate.db.runner import Database
from faregate.db.schema import email_tokens, users
from faregate.errors import InvalidRequest, RateLimited
from faregate.identity import sessions as session_service
from faregate.identity.passwords import verify_password
from faregate.identity.recovery import (
    confirm_password_reset,
    request_password_reset,
    resend_verification,
    verify_email,
)
from faregate.identity.signin import sign_in
from faregate.notify.email import EmailMessage
from tests.identity.conftest import PASSWORD, RULES, SECRET, audit, new_user


def _token(message: EmailMessage | None) -> str:
    assert message is not None
    match = re.search(r"\?token=([A-Za-z0-9_-]+)", message.text)
    assert match, message.text
    return match.group(1)


def _expire_all(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(email_tokens.update().values(
            expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))


def _verified(engine: Engine, user_id: str) -> bool:
    with engine.begin() as conn:
        return conn.execute(sa.select(users.c.email_verified_at)
                            .where(users.c.id == user_id)).scalar() is not None


def test_verification_link_works_once(engine: Engine) -> None:
    user = new_user(engine, "ada@example.com")
    with engine.begin() as conn:
        first = _token(resend_verification(conn, user_id=user.id, ip="10.2.0.1", rules=RULES,
                                           secret=SECRET))
        second = resend_verification(conn, user_id=user.id, ip="10.2.0.1", rules=RULES,
                                     secret=SECRET)
        assert second.to == "ada@example.com"
        assert "https://fg.example.com/verify-email?token=" in second.text
    with engine.begin() as conn, pytest.raises(InvalidRequest) as superseded:
        verify_email(conn, token=first, ip="10.2.0.1", secret=SECRET)
    assert superseded.value.code == "token_used"
    assert not _verified(engine, user.id)
    with engine.begin() as conn:
        assert verify_email(conn, token=_token(second), ip="10.2.0.1", secret=SECRET) == user
    assert _verified(engine, user.id)
    with engine.begin() as conn, pytest.raises(InvalidRequest) as again:
        verify_email(conn, token=_token(second), ip="10.2.0.1", secret=SECRET)
    assert again.value.code == "token_used"
    with engine.begin() as conn, pytest.raises(InvalidRequest, match="already verified"):
        resend_verification(conn, user_id=user.id, ip="10.2.0.1", rules=RULES, secret=SECRET)
    assert len(audit(engine, "auth.email_verified")) == 1


def test_verification_refusals(engine: Engine) -> None:
    user = new_user(engine, "ada@example.com")
    with engine.begin() as conn:
        for _ in range(RULES.password_resets_per_account_per_hour):
            token = _token(resend_verification(conn, user_id=user.id, ip="10.2.1.1",
                                               rules=RULES, secret=SECRET))
        with pytest.raises(RateLimited, match="Too many verification emails"):
            resend_verification(conn, user_id=user.id, ip="10.2.1.1", rules=RULES,
                                secret=SECRET)
    _expire_all(engine)
    with engine.begin() as conn:
        with pytest.raises(InvalidRequest) as expired:
            verify_email(conn, token=token, ip="10.2.1.1", secret=SECRET)
        assert expired.value.code == "token_expired"
        for bad in ["", "x" * 500, token[:-1]]:
            with pytest.raises(InvalidRequest) as invalid:
                verify_email(conn, token=bad, ip="10.2.1.1", secret=SECRET)
            assert invalid.value.code == "invalid_token"
    assert not _verified(engine, user.id)


def test_reset_requests_do_not_tell_whether_the_account_exists(engine: Engine) -> None:
    new_user(engine, "ada@example.com")
    with engine.begin() as conn:
        assert request_password_reset(conn, email="nobody@example.com", ip="10.2.2.1",
                                      rules=RULES, secret=SECRET) is None
        sent = request_password_reset(conn, email=" ADA@example.com", ip="10.2.2.1",
                                      rules=RULES, secret=SECRET)
        assert sent is not None
        assert sent.to == "ada@example.com"
        assert "https://fg.example.com/reset-password?token=" in sent.text
        # Past the account's hourly limit: nothing is sent, and nothing tells.
        assert request_password_reset(conn, email="ada@example.com", ip="10.2.2.2",
                                      rules=RULES, secret=SECRET) is not None
        assert request_password_reset(conn, email="ada@example.com", ip="10.2.2.2",
                                      rules=RULES, secret=SECRET) is None
        # Past the address's limit (4), it refuses outright.
        for other in ["x@example.com", "y@example.com"]:
            assert request_password_reset(conn, email=other, ip="10.2.2.1", rules=RULES,
                                          secret=SECRET) is None
        with pytest.raises(RateLimited, match="password reset requests from your network"):
            request_password_reset(conn, email="z@example.com", ip="10.2.2.1", rules=RULES,
                                   secret=SECRET)
    assert len(audit(engine, "auth.password_reset_requested")) == 2


async def test_reset_sets_the_password_once(engine: Engine, db: Database) -> None:
    user = new_user(engine, "ada@example.com")
    session = await sign_in(db, email=user.email, password=PASSWORD, ip="10.2.3.1",
                            user_agent=None, previous_session_id=None, rules=RULES,
                            secret=SECRET)
    with engine.begin() as conn:
        token = _token(request_password_reset(conn, email=user.email, ip="10.2.3.1",
                                              rules=RULES, secret=SECRET))
    with pytest.raises(InvalidRequest, match="cannot contain your email"):
        await confirm_password_reset(db, token=token, password="ada and a long tail",
                                     ip="10.2.3.1", rules=RULES, secret=SECRET)
    # The refused attempt did not use the link up.
    done, notice = await confirm_password_reset(db, token=token, password="a new passphrase",
                                                ip="10.2.3.1", rules=RULES, secret=SECRET)
    assert done == user
    assert notice.to == user.email
    with engine.begin() as conn:
        row = conn.execute(sa.select(users).where(users.c.id == user.id)).one()
        assert verify_password(row.password_hash, "a new passphrase")
        assert row.email_verified_at is not None  # the link proved the address
        assert session_service.authenticate(conn, session.token, secret=SECRET,
                                            idle_s=60) is None
    with pytest.raises(InvalidRequest) as reused:
        await confirm_password_reset(db, token=token, password="yet another passphrase",
                                     ip="10.2.3.1", rules=RULES, secret=SECRET)
    assert reused.value.code == "token_used"
    [event] = audit(engine, "auth.password_reset")
    assert event.detail == {"sessions_ended": 1}


async def test_reset_link_expires(engine: Engine, db: Database) -> None:
    user = new_user(engine, "ada@example.com", with_password=False)
    with engine.begin() as conn:
        token = _token(request_password_reset(conn, email=user.email, ip="10.2.4.1",
                                              rules=RULES, secret=SECRET))
        verify_link = _token(resend_verification(conn, user_id=user.id, ip="10.2.4.1",
                                                 rules=RULES, secret=SECRET))
    with pytest.raises(InvalidRequest) as wrong_purpose:
        await confirm_password_reset(db, token=verify_link, password="a new passphrase",
                                     ip="10.2.4.1", rules=RULES, secret=SECRET)
    assert wrong_purpose.value.code == "invalid_token"
    _expire_all(engine)
    with pytest.raises(InvalidRequest) as expired:
        await confirm_password_reset(db, token=token, password="a new passphrase",
                                     ip="10.2.4.1", rules=RULES, secret=SECRET)
    assert expired.value.code == "token_expired"
    with engine.begin() as conn:
        assert conn.execute(sa.select(users.c.password_hash)
                            .where(users.c.id == user.id)).scalar() is None
