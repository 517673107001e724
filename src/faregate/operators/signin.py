"""Operator sign-in: email, password and a TOTP code (or one recovery code).

As for users (identity.signin), three steps, so that the slow password check runs on no
database connection: `start_sign_in` counts the attempt against the account's and the client
address's limits (committed before anything is checked) and reads the stored hash; the hash is
verified off the event loop; `finish_sign_in` checks the second factor, records the outcome
(committed whichever it is), and only then does `sign_in` raise.

Every refusal — unknown email, wrong password, wrong, reused or missing code, disabled
operator — gets the same answer; the audit trail records which it was. The second factor is
only looked at (and a code only used up) once the password matched."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from dataclasses import dataclass, field

import sqlalchemy as sa

from faregate.audit import trail
from faregate.audit.changes import operator_actor
from faregate.db.runner import Database
from faregate.db.schema import operators
from faregate.errors import AuthenticationFailed
from faregate.identity.locks import lock_subject
from faregate.identity.passwords import verify_and_upgrade
from faregate.identity.users import lookup_email
from faregate.kit.crypto import Cipher
from faregate.operators import recovery_codes, sessions, totp
from faregate.operators.rules import SIGN_IN_WINDOW_S, OperatorRules, as_role
from faregate.operators.sessions import OperatorPrincipal
from faregate.throttle import limiter

ACCOUNT_SCOPE = "operator_sign_in:account"
IP_SCOPE = "operator_sign_in:ip"
INCORRECT = "Incorrect email, password or code."
_LOCK_SPACE = 0x4F505349  # b"OPSI"


@dataclass(frozen=True, slots=True)
class SecondFactor:
    """A TOTP code or a recovery code (not both)."""

    totp_code: str | None = field(default=None, repr=False)
    recovery_code: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class SignInAttempt:
    email: str
    operator_id: str | None
    password_hash: str | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class OperatorSignedIn:
    principal: OperatorPrincipal
    token: str = field(repr=False)  # for the cookie only
    used_recovery_code: bool
    recovery_codes_left: int


def count_attempt(conn: sa.Connection, email: str, ip: str, *, rules: OperatorRules,
                  secret: bytes) -> None:
    """Check, then count, one attempt against the account and the address (RateLimited when
    over either limit)."""
    limiter.gate(conn, limits=[(ACCOUNT_SCOPE, email, rules.sign_in_attempts_per_account),
                               (IP_SCOPE, ip, rules.sign_in_attempts_per_ip)],
                 window_s=SIGN_IN_WINDOW_S, secret=secret,
                 message="Too many operator sign-in attempts.")


def start_sign_in(conn: sa.Connection, *, email: str, ip: str, rules: OperatorRules,
                  secret: bytes) -> SignInAttempt:
    email = lookup_email(email)
    lock_subject(conn, _LOCK_SPACE, email)
    count_attempt(conn, email, ip, rules=rules, secret=secret)
    row = conn.execute(sa.select(operators.c.id, operators.c.password_hash)
                       .where(operators.c.email == email)).first()
    if row is None:
        return SignInAttempt(email, None, None)
    return SignInAttempt(email, row.id, row.password_hash)


def _second_factor(conn: sa.Connection, row: sa.Row[tuple[object, ...]], factor: SecondFactor,
                   *, cipher: Cipher, secret: bytes) -> str | None:
    """None when the factor is good (and now used up), else the reason it is not."""
    operator_id = str(row.id)
    if factor.recovery_code:
        ok = recovery_codes.consume(conn, operator_id, factor.recovery_code, secret=secret)
        return None if ok else "wrong_recovery_code"
    if not factor.totp_code:
        return "code_missing"
    try:
        otp_secret = cipher.decrypt(str(row.totp_secret_encrypted))
    except ValueError:
        return "totp_secret_unreadable"  # the encryption key changed: reset TOTP by the CLI
    last = row.totp_last_step
    step = totp.matching_step(otp_secret, factor.totp_code,
                              after_step=None if last is None else int(str(last)))
    if step is None:
        if totp.matching_step(otp_secret, factor.totp_code, after_step=None) is not None:
            return "reused_code"
        return "wrong_code"
    return None if totp.claim_step(conn, operator_id, step) else "reused_code"


def finish_sign_in(conn: sa.Connection, attempt: SignInAttempt, *, matched: bool,
                   new_hash: str | None, factor: SecondFactor, ip: str,
                   user_agent: str | None, previous_session_id: str | None,
                   rules: OperatorRules, secret: bytes,
                   cipher: Cipher) -> OperatorSignedIn | None:
    """Check the second factor and record the outcome; on success end the previous session
    (if any) and start a new one. None on failure."""
    row = None
    if attempt.operator_id is not None:
        row = conn.execute(sa.select(operators).where(operators.c.id == attempt.operator_id)
                           ).first()
    reason: str | None
    if row is None:
        reason = "unknown_account"
    elif not matched or row.password_hash != attempt.password_hash:
        reason = "wrong_password"
    elif row.disabled_at is not None:
        reason = "disabled"
    else:
        reason = _second_factor(conn, row, factor, cipher=cipher, secret=secret)
    if reason is not None:
        trail.record(conn, action="operator.sign_in_failed", actor="anonymous",
                     target=attempt.operator_id, ip=ip, detail={"reason": reason})
        return None
    assert row is not None
    now = dt.datetime.now(dt.UTC)
    values: dict[str, object] = {"last_sign_in_at": now}
    if factor.totp_code and row.totp_confirmed_at is None:
        values["totp_confirmed_at"] = now  # the authenticator works: enrolment confirmed
    if new_hash is not None:
        values["password_hash"] = new_hash
    conn.execute(operators.update().where(operators.c.id == row.id).values(**values))
    if previous_session_id is not None:
        sessions.revoke(conn, previous_session_id)
    session_id, token = sessions.create_session(
        conn, operator_id=row.id, ip=ip, user_agent=user_agent, ttl_s=rules.session_ttl_s,
        secret=secret)
    method = "recovery_code" if factor.recovery_code else "totp"
    trail.record(conn, action="operator.signed_in", actor=operator_actor(row.id),
                 target=row.id, ip=ip, detail={"session_id": session_id, "method": method})
    principal = OperatorPrincipal(session_id, row.id, row.email, row.name, as_role(row.role))
    return OperatorSignedIn(principal, token, method == "recovery_code",
                            recovery_codes.remaining(conn, row.id))


async def sign_in(db: Database, *, email: str, password: str, factor: SecondFactor, ip: str,
                  user_agent: str | None, previous_session_id: str | None,
                  rules: OperatorRules, secret: bytes, cipher: Cipher) -> OperatorSignedIn:
    """The whole sign-in: AuthenticationFailed ("invalid_credentials") or RateLimited after
    the attempt is committed, else the new session."""
    attempt = await db.run(functools.partial(start_sign_in, email=email, ip=ip, rules=rules,
                                             secret=secret))
    matched, new_hash = await asyncio.to_thread(verify_and_upgrade, attempt.password_hash,
                                                password)
    signed = await db.run(functools.partial(
        finish_sign_in, attempt=attempt, matched=matched, new_hash=new_hash, factor=factor,
        ip=ip, user_agent=user_agent, previous_session_id=previous_session_id, rules=rules,
        secret=secret, cipher=cipher))
    if signed is None:
        raise AuthenticationFailed(INCORRECT, code="invalid_credentials")
    return signed


def sign_out(conn: sa.Connection, principal: OperatorPrincipal, *, ip: str | None) -> None:
    sessions.revoke(conn, principal.session_id)
    trail.record(conn, action="operator.signed_out", actor=principal.actor,
                 target=principal.operator_id, ip=ip,
                 detail={"session_id": principal.session_id})
