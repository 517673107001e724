"""Operator sign-in: password plus a TOTP code (or a recovery code, once); codes cannot be
replayed; one answer for every refusal; attempts throttled per account and per address; a
disabled operator cannot sign in; sessions expire, idle out and rotate."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

import pyotp
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from faregate.audit.trail import list_events
from faregate.db.runner import Database
from faregate.db.schema import operator_sessions, operators
from faregate.errors import AuthenticationFailed, RateLimited
from faregate.operators import accounts, sessions
from faregate.operators.accounts import OperatorChange
from faregate.operators.rules import OperatorRules
from faregate.operators.signin import OperatorSignedIn, SecondFactor, sign_in
from faregate.operators.totp import current_step, matching_step
from tests.operators.conftest import CIPHER, PASSWORD, RULES, SECRET, audit, code, make_operator


async def _sign_in(db: Database, email: str, password: str = PASSWORD, *,
                   totp_code: str | None = None, recovery_code: str | None = None,
                   ip: str = "10.0.0.1", previous: str | None = None,
                   rules: OperatorRules = RULES) -> OperatorSignedIn:
    return await sign_in(db, email=email, password=password,
                         factor=SecondFactor(totp_code, recovery_code), ip=ip,
                         user_agent="pytest", previous_session_id=previous, rules=rules,
                         secret=SECRET, cipher=CIPHER)


async def _refused(db: Database, email: str, password: str = PASSWORD, *,
                   rules: OperatorRules = RULES, **kw: str) -> str:
    """Expect the generic refusal; return the reason the audit trail recorded."""
    with pytest.raises(AuthenticationFailed) as refused:
        await _sign_in(db, email, password, rules=rules, **kw)
    assert refused.value.message == "Incorrect email, password or code."
    assert (refused.value.status, refused.value.code) == (401, "invalid_credentials")

    def last(conn: sa.Connection) -> str:
        detail = list_events(conn, action="operator.sign_in_failed", limit=1)[0].detail
        assert detail is not None
        return str(detail["reason"])
    return await db.run(last)


def _principal(engine: Engine, token: str, *, idle_s: int = 600,
               now: dt.datetime | None = None) -> sessions.OperatorPrincipal | None:
    with engine.begin() as conn:
        return sessions.authenticate(conn, token, secret=SECRET, idle_s=idle_s, now=now)


async def test_password_and_totp_code_start_a_session(engine: Engine, db: Database) -> None:
    made = make_operator(engine, "root@example.com", name="Root")
    signed = await _sign_in(db, "ROOT@example.com ", totp_code=code(made))
    assert "token" not in repr(signed) and signed.token not in repr(signed)
    assert not signed.used_recovery_code and signed.recovery_codes_left == 10
    found = _principal(engine, signed.token)
    assert found == signed.principal
    assert (found.email, found.name, found.role, found.is_admin) == (
        "root@example.com", "Root", "admin", True)
    assert found.actor == f"operator:{made.operator.id}"
    with engine.begin() as conn:
        op = accounts.get_operator(conn, made.operator.id)
        stored = conn.execute(sa.select(operator_sessions.c.token_hash)).scalars().all()
    assert op.totp_confirmed and op.last_sign_in_at is not None
    assert signed.token not in stored
    [event] = audit(engine, "operator.signed_in")
    assert (event.actor, event.target, event.ip) == (found.actor, made.operator.id, "10.0.0.1")
    assert event.detail == {"session_id": found.session_id, "method": "totp"}


async def test_every_refusal_gets_the_same_answer(engine: Engine, db: Database) -> None:
    made = make_operator(engine, "root@example.com")
    lax = dataclasses.replace(RULES, sign_in_attempts_per_account=20,
                              sign_in_attempts_per_ip=20)
    assert await _refused(db, "nobody@example.com", totp_code=code(made),
                          rules=lax) == "unknown_account"
    assert await _refused(db, "root@example.com", PASSWORD + "!", totp_code=code(made),
                          rules=lax) == "wrong_password"
    assert await _refused(db, "root@example.com", rules=lax) == "code_missing"  # no TOTP
    wrong = f"{(int(code(made)) + 1) % 1_000_000:06d}"
    assert await _refused(db, "root@example.com", totp_code=wrong, rules=lax) == "wrong_code"
    assert await _refused(db, "root@example.com", totp_code="abcdef",
                          rules=lax) == "wrong_code"
    assert await _refused(db, "root@example.com", recovery_code="aaaaa-bbbbb",
                          rules=lax) == "wrong_recovery_code"
    # A code from three steps ahead is outside the window.
    assert await _refused(db, "root@example.com", totp_code=code(made, 3),
                          rules=lax) == "wrong_code"
    # None of this used up the current code.
    await _sign_in(db, "root@example.com", totp_code=code(made), rules=lax)


async def test_a_wrong_password_does_not_use_up_the_code(engine: Engine,
                                                         db: Database) -> None:
    made = make_operator(engine, "root@example.com")
    now_code = code(made)
    assert await _refused(db, "root@example.com", "guess guess guess",
                          totp_code=now_code) == "wrong_password"
    await _sign_in(db, "root@example.com", totp_code=now_code)


async def test_a_code_works_once_and_older_codes_die_with_it(engine: Engine,
                                                             db: Database) -> None:
    made = make_operator(engine, "root@example.com")
    # One code, computed once: computing it again could cross a 30-s step boundary and give
    # the next step's (unused, valid) code.
    now_code, next_code = code(made), code(made, 1)
    first = await _sign_in(db, "root@example.com", totp_code=now_code)
    assert await _refused(db, "root@example.com", totp_code=now_code) in (
        "reused_code", "wrong_code")  # "wrong" only if the clock moved two steps meanwhile
    # The next step's code (within the window) works, and then the previous one cannot.
    second = await _sign_in(db, "root@example.com", totp_code=next_code,
                            previous=first.principal.session_id)
    assert await _refused(db, "root@example.com", totp_code=now_code) in (
        "reused_code", "wrong_code")
    assert _principal(engine, first.token) is None  # the previous session was rotated out
    assert _principal(engine, second.token) is not None


async def test_concurrent_sign_ins_with_one_code_let_one_in(engine: Engine,
                                                            db: Database) -> None:
    made = make_operator(engine, "root@example.com")
    one = code(made)
    results = await asyncio.gather(
        *(_sign_in(db, "root@example.com", totp_code=one, ip=f"10.0.5.{i}") for i in range(3)),
        return_exceptions=True)
    assert sum(isinstance(r, OperatorSignedIn) for r in results) == 1
    assert sum(isinstance(r, AuthenticationFailed) for r in results) == 2


async def test_a_recovery_code_works_once(engine: Engine, db: Database) -> None:
    made = make_operator(engine, "root@example.com")
    rc = made.enrolment.recovery_codes[3]
    signed = await _sign_in(db, "root@example.com", recovery_code=f" {rc.upper()} ")
    assert signed.used_recovery_code and signed.recovery_codes_left == 9
    assert await _refused(db, "root@example.com", recovery_code=rc) == "wrong_recovery_code"
    # Another operator's codes are not yours.
    other = make_operator(engine, "other@example.com")
    assert await _refused(db, "other@example.com",
                          recovery_code=made.enrolment.recovery_codes[4]) == \
        "wrong_recovery_code"
    await _sign_in(db, "other@example.com", recovery_code=other.enrolment.recovery_codes[4])
    with engine.begin() as conn:
        op = accounts.get_operator(conn, made.operator.id)
    assert op.recovery_codes_left == 9
    assert not op.totp_confirmed  # a recovery code proves nothing about the authenticator
    [event, _] = audit(engine, "operator.signed_in")
    assert event.detail is not None and event.detail["method"] == "recovery_code"


async def test_a_disabled_operator_cannot_sign_in(engine: Engine, db: Database) -> None:
    make_operator(engine, "root@example.com")
    made = make_operator(engine, "helper@example.com", "support")
    with engine.begin() as conn:
        accounts.change_operator(conn, made.operator.id, OperatorChange(disabled=True),
                                 actor="test")
    assert await _refused(db, "helper@example.com", totp_code=code(made)) == "disabled"
    assert await _refused(db, "helper@example.com",
                          recovery_code=made.enrolment.recovery_codes[0]) == "disabled"
    with engine.begin() as conn:
        accounts.change_operator(conn, made.operator.id, OperatorChange(disabled=False),
                                 actor="test")
    signed = await _sign_in(db, "helper@example.com", totp_code=code(made))
    assert signed.principal.role == "support" and not signed.principal.is_admin
    # The disabled attempts used up neither the code nor the recovery code.
    assert signed.recovery_codes_left == 10


async def test_attempts_are_throttled_per_account(engine: Engine, db: Database) -> None:
    made = make_operator(engine, "root@example.com")
    for i in range(RULES.sign_in_attempts_per_account):
        await _refused(db, "root@example.com", f"guess number {i}", totp_code=code(made),
                       ip=f"10.0.1.{i}")
    with pytest.raises(RateLimited) as throttled:
        await _sign_in(db, "root@example.com", totp_code=code(made), ip="10.0.2.1")
    assert throttled.value.status == 429
    assert "Too many operator sign-in attempts" in throttled.value.message
    assert int(throttled.value.headers["retry-after"]) > 0
    make_operator(engine, "other@example.com")  # other operators are not affected


async def test_attempts_are_throttled_per_address(engine: Engine, db: Database) -> None:
    made = make_operator(engine, "root@example.com")
    for i in range(RULES.sign_in_attempts_per_ip):
        await _refused(db, f"nobody{i}@example.com", ip="10.9.9.9")
    with pytest.raises(RateLimited):
        await _sign_in(db, "root@example.com", totp_code=code(made), ip="10.9.9.9")
    await _sign_in(db, "root@example.com", totp_code=code(made), ip="10.9.9.10")


async def test_sessions_expire_and_idle_out(engine: Engine, db: Database) -> None:
    made = make_operator(engine, "root@example.com")
    rules = dataclasses.replace(RULES, session_ttl_s=3600)
    signed = await _sign_in(db, "root@example.com", totp_code=code(made), rules=rules)
    now = dt.datetime.now(dt.UTC)
    assert _principal(engine, signed.token, idle_s=600, now=now + dt.timedelta(seconds=599))
    # Idle: measured from the last use (just refreshed above).
    assert _principal(engine, signed.token, idle_s=600,
                      now=now + dt.timedelta(seconds=1300)) is None
    assert _principal(engine, signed.token, idle_s=10**6,
                      now=now + dt.timedelta(seconds=3601)) is None
    assert _principal(engine, "not-a-token") is None
    assert _principal(engine, "") is None


async def test_an_unreadable_secret_refuses_without_error(engine: Engine,
                                                          db: Database) -> None:
    made = make_operator(engine, "root@example.com")
    with engine.begin() as conn:
        conn.execute(operators.update().values(totp_secret_encrypted="garbage"))
    assert await _refused(db, "root@example.com", totp_code=code(made)) == \
        "totp_secret_unreadable"


def test_matching_step_window() -> None:
    secret = "JBSWY3DPEHPK3PXP"
    otp = pyotp.TOTP(secret)
    now = 1_800_000_015.0
    step = current_step(now)
    for offset in (-1, 0, 1):
        assert matching_step(secret, otp.generate_otp(step + offset), after_step=None,
                             now=now) == step + offset
        assert matching_step(secret, otp.generate_otp(step + offset),
                             after_step=step + offset, now=now) is None
    for offset in (-2, 2):
        assert matching_step(secret, otp.generate_otp(step + offset), after_step=None,
                             now=now) is None
    assert matching_step(secret, "12345", after_step=None, now=now) is None
    assert matching_step(secret, "١٢٣٤٥٦", after_step=None, now=now) is None
