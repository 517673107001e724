"""Signing in with an email address and a password.

Three steps, so that the slow password check (argon2, ~0.15 s) runs on no database connection
and holds no lock: `start_sign_in` counts the attempt against the account's and the address's
limits (committed before the password is even checked, so concurrent guesses cannot overshoot
them) and reads the stored hash; the hash is verified off the event loop; `finish_sign_in`
records the outcome, committed whichever it is, and only then does `sign_in` raise.

An unknown email, a user without a password and a wrong password get the same answer, after
the same work (a dummy hash is verified when there is no hash)."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from dataclasses import dataclass, field

import sqlalchemy as sa

from faregate.audit import trail
from faregate.db.runner import Database
from faregate.db.schema import users
from faregate.errors import AuthenticationFailed
from faregate.identity import sessions
from faregate.identity.locks import lock_subject
from faregate.identity.passwords import verify_and_upgrade
from faregate.identity.rules import SIGN_IN_WINDOW_S, AuthRules
from faregate.identity.users import User, lookup_email
from faregate.throttle import limiter

ACCOUNT_SCOPE = "sign_in:account"
IP_SCOPE = "sign_in:ip"
INCORRECT = "Incorrect email or password."
DEACTIVATED = ("This account has been deactivated by the operator of this service. If you "
               "feel this is an error, contact them.")
_LOCK_SPACE = 0x5349474E  # b"SIGN"


@dataclass(frozen=True, slots=True)
class SignInAttempt:
    email: str
    user_id: str | None
    organization_id: str | None
    password_hash: str | None = field(repr=False)
    deactivated: bool = False  # by an operator: told only after the right password


@dataclass(frozen=True, slots=True)
class SignedIn:
    user: User
    email_verified: bool
    session_id: str
    token: str = field(repr=False)  # for the cookie only


def check_account_limit(conn: sa.Connection, email: str, *, rules: AuthRules,
                        secret: bytes) -> None:
    """Raise RateLimited when the account has used up its sign-in attempts."""
    limiter.check(conn, scope=ACCOUNT_SCOPE, subject=email,
                  limit=rules.sign_in_attempts_per_account, window_s=SIGN_IN_WINDOW_S,
                  secret=secret, message="Too many sign-in attempts for this account.")


def count_account_attempt(conn: sa.Connection, email: str, *, secret: bytes) -> int:
    """Count one attempt against the account; return the attempts in the window."""
    limiter.record(conn, scope=ACCOUNT_SCOPE, subject=email, secret=secret)
    return limiter.count(conn, scope=ACCOUNT_SCOPE, subject=email, window_s=SIGN_IN_WINDOW_S,
                         secret=secret)


def start_sign_in(conn: sa.Connection, *, email: str, ip: str, rules: AuthRules,
                  secret: bytes) -> SignInAttempt:
    """Check and count the attempt (RateLimited when over a limit); read the stored hash."""
    email = lookup_email(email)
    lock_subject(conn, _LOCK_SPACE, email)
    check_account_limit(conn, email, rules=rules, secret=secret)
    limiter.check(conn, scope=IP_SCOPE, subject=ip, limit=rules.sign_in_attempts_per_ip,
                  window_s=SIGN_IN_WINDOW_S, secret=secret,
                  message="Too many sign-in attempts from your network.")
    limiter.record(conn, scope=ACCOUNT_SCOPE, subject=email, secret=secret)
    limiter.record(conn, scope=IP_SCOPE, subject=ip, secret=secret)
    row = conn.execute(sa.select(users.c.id, users.c.organization_id, users.c.password_hash,
                                 users.c.deactivated_at)
                       .where(users.c.email == email)).first()
    if row is None:
        return SignInAttempt(email, None, None, None)
    return SignInAttempt(email, row.id, row.organization_id, row.password_hash,
                         row.deactivated_at is not None)


def finish_sign_in(conn: sa.Connection, attempt: SignInAttempt, *, matched: bool,
                   new_hash: str | None, ip: str, user_agent: str | None,
                   previous_session_id: str | None, rules: AuthRules,
                   secret: bytes) -> SignedIn | None:
    """Record the outcome. On success: end the previous session (if any), start a new one,
    store the upgraded hash; return None on failure."""
    row = None
    if attempt.user_id is not None:
        row = conn.execute(sa.select(users.c.password_hash, users.c.email_verified_at)
                           .where(users.c.id == attempt.user_id)).first()
    # The hash that was verified must still be the user's (no reset in between).
    if not matched or row is None or row.password_hash != attempt.password_hash:
        record_failure(conn, attempt, ip=ip, rules=rules, secret=secret)
        return None
    assert attempt.user_id is not None
    assert attempt.organization_id is not None
    if attempt.deactivated:
        trail.record(conn, action="auth.sign_in_refused", actor=f"user:{attempt.user_id}",
                     target=attempt.user_id, organization_id=attempt.organization_id, ip=ip,
                     detail={"reason": "deactivated"})
        return None
    if previous_session_id is not None:
        sessions.revoke(conn, previous_session_id)
    if new_hash is not None:
        conn.execute(users.update().where(users.c.id == attempt.user_id,
                                          users.c.password_hash == attempt.password_hash)
                     .values(password_hash=new_hash))
    session_id, token = sessions.create_session(
        conn, user_id=attempt.user_id, ip=ip, user_agent=user_agent,
        ttl_s=rules.session_ttl_s, secret=secret)
    trail.record(conn, action="auth.signed_in", actor=f"user:{attempt.user_id}",
                 target=attempt.user_id, organization_id=attempt.organization_id, ip=ip,
                 detail={"session_id": session_id})
    return SignedIn(User(attempt.user_id, attempt.email, attempt.organization_id),
                    row.email_verified_at is not None, session_id, token)


def record_failure(conn: sa.Connection, attempt: SignInAttempt, *, ip: str, rules: AuthRules,
                   secret: bytes) -> None:
    """Audit a failed sign-in; the first time the account's attempts reach the limit within
    a window, audit the burst too."""
    if attempt.user_id is None:
        reason = "unknown_account"
    elif attempt.password_hash is None:
        reason = "no_password"
    else:
        reason = "wrong_password"
    trail.record(conn, action="auth.sign_in_failed", actor="anonymous", target=attempt.user_id,
                 organization_id=attempt.organization_id, ip=ip, detail={"reason": reason})
    if attempt.user_id is None or attempt.organization_id is None:
        return
    attempts = limiter.count(conn, scope=ACCOUNT_SCOPE, subject=attempt.email,
                             window_s=SIGN_IN_WINDOW_S, secret=secret)
    if attempts >= rules.sign_in_attempts_per_account:
        note_burst(conn, user_id=attempt.user_id, organization_id=attempt.organization_id,
                   ip=ip, attempts=attempts)


def note_burst(conn: sa.Connection, *, user_id: str, organization_id: str, ip: str,
               attempts: int) -> None:
    """Audit "auth.sign_in_burst" unless it was already audited in the current window."""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=SIGN_IN_WINDOW_S)
    latest = trail.list_events(conn, organization_id=organization_id,
                               action="auth.sign_in_burst", limit=1)
    if latest and latest[0].target == user_id and latest[0].created_at > since:
        return
    trail.record(conn, action="auth.sign_in_burst", actor="anonymous", target=user_id,
                 organization_id=organization_id, ip=ip,
                 detail={"attempts": attempts, "window_s": SIGN_IN_WINDOW_S})


async def sign_in(db: Database, *, email: str, password: str, ip: str, user_agent: str | None,
                  previous_session_id: str | None, rules: AuthRules,
                  secret: bytes) -> SignedIn:
    """The whole sign-in: AuthenticationFailed ("invalid_credentials") or RateLimited after
    the attempt is committed, else the new session."""
    attempt = await db.run(functools.partial(start_sign_in, email=email, ip=ip, rules=rules,
                                             secret=secret))
    matched, new_hash = await asyncio.to_thread(verify_and_upgrade, attempt.password_hash,
                                                password)
    signed = await db.run(functools.partial(
        finish_sign_in, attempt=attempt, matched=matched, new_hash=new_hash, ip=ip,
        user_agent=user_agent, previous_session_id=previous_session_id, rules=rules,
        secret=secret))
    if signed is None and matched and attempt.deactivated:
        raise AuthenticationFailed(DEACTIVATED, code="account_deactivated")
    if signed is None:
        raise AuthenticationFailed(INCORRECT, code="invalid_credentials")
    return signed
