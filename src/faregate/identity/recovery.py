"""Email verification and password reset, by single-use links (see `email_tokens`).

A reset request answers the same whether the address has an account or not; over the
account's hourly limit it quietly sends nothing (over the address's limit it refuses, 429)."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools

import sqlalchemy as sa

from faregate.audit import trail
from faregate.db.runner import Database
from faregate.db.schema import users
from faregate.errors import InvalidRequest
from faregate.identity import sessions
from faregate.identity.accounts import verification_message
from faregate.identity.email_tokens import find_email_token, issue_email_token, use_email_token
from faregate.identity.mail import password_changed_email, reset_email
from faregate.identity.passwords import check_password_policy, hash_password
from faregate.identity.rules import HOUR_S, AuthRules
from faregate.identity.users import User, normalize_email
from faregate.notify.email import EmailMessage
from faregate.throttle import limiter

VERIFY_SCOPE = "verify_email:account"
RESET_ACCOUNT_SCOPE = "reset:account"
RESET_IP_SCOPE = "reset:ip"


def resend_verification(conn: sa.Connection, *, user_id: str, ip: str, rules: AuthRules,
                        secret: bytes) -> EmailMessage:
    """A new verification link for a signed-in user whose address is not verified yet."""
    row = conn.execute(sa.select(users.c.email, users.c.email_verified_at,
                                 users.c.organization_id).where(users.c.id == user_id)).one()
    if row.email_verified_at is not None:
        raise InvalidRequest("Your email address is already verified.",
                             code="email_already_verified")
    limiter.check(conn, scope=VERIFY_SCOPE, subject=user_id,
                  limit=rules.password_resets_per_account_per_hour, window_s=HOUR_S,
                  secret=secret, message="Too many verification emails were sent.")
    limiter.record(conn, scope=VERIFY_SCOPE, subject=user_id, secret=secret)
    trail.record(conn, action="auth.verification_sent", actor=f"user:{user_id}",
                 target=user_id, organization_id=row.organization_id, ip=ip)
    return verification_message(conn, user_id=user_id, email=row.email, rules=rules,
                                secret=secret)


def verify_email(conn: sa.Connection, *, token: str, ip: str, secret: bytes) -> User:
    """Use a verification link: the address it was sent to is now verified."""
    found = use_email_token(conn, token, purpose="verify", secret=secret)
    conn.execute(users.update().where(users.c.id == found.user_id,
                                      users.c.email_verified_at.is_(None))
                 .values(email_verified_at=dt.datetime.now(dt.UTC)))
    row = conn.execute(sa.select(users.c.organization_id).where(users.c.id == found.user_id)
                       ).one()
    trail.record(conn, action="auth.email_verified", actor=f"user:{found.user_id}",
                 target=found.user_id, organization_id=row.organization_id, ip=ip)
    return User(found.user_id, found.email, row.organization_id)


def request_password_reset(conn: sa.Connection, *, email: str, ip: str, rules: AuthRules,
                           secret: bytes) -> EmailMessage | None:
    """The reset email to send, or None (no such account, or its hourly limit reached).
    RateLimited when the client's address made too many requests."""
    email = normalize_email(email)
    limiter.check(conn, scope=RESET_IP_SCOPE, subject=ip,
                  limit=rules.password_resets_per_ip_per_hour, window_s=HOUR_S, secret=secret,
                  message="Too many password reset requests from your network.")
    limiter.record(conn, scope=RESET_IP_SCOPE, subject=ip, secret=secret)
    sent = limiter.count(conn, scope=RESET_ACCOUNT_SCOPE, subject=email, window_s=HOUR_S,
                         secret=secret)
    if sent >= rules.password_resets_per_account_per_hour:
        return None
    limiter.record(conn, scope=RESET_ACCOUNT_SCOPE, subject=email, secret=secret)
    row = conn.execute(sa.select(users.c.id, users.c.organization_id)
                       .where(users.c.email == email)).first()
    if row is None:
        return None
    token = issue_email_token(conn, user_id=row.id, email=email, purpose="reset",
                              ttl_s=rules.password_reset_ttl_s, secret=secret)
    trail.record(conn, action="auth.password_reset_requested", actor="anonymous",
                 target=row.id, organization_id=row.organization_id, ip=ip)
    return reset_email(email, rules.link("/reset-password", token), rules.password_reset_ttl_s)


def reset_email_address(conn: sa.Connection, *, token: str, secret: bytes) -> str:
    """The address a (still usable) reset link was sent to; InvalidRequest otherwise."""
    return find_email_token(conn, token, purpose="reset", secret=secret).email


def finish_password_reset(conn: sa.Connection, *, token: str, password_hash: str, ip: str,
                          secret: bytes) -> tuple[User, EmailMessage]:
    """Use the link: set the password, mark the address verified (the link proved it), end
    every session. Returns the user and a notice to send."""
    found = use_email_token(conn, token, purpose="reset", secret=secret)
    now = dt.datetime.now(dt.UTC)
    conn.execute(users.update().where(users.c.id == found.user_id)
                 .values(password_hash=password_hash, password_changed_at=now))
    conn.execute(users.update().where(users.c.id == found.user_id,
                                      users.c.email_verified_at.is_(None))
                 .values(email_verified_at=now))
    ended = sessions.revoke_all(conn, found.user_id)
    org_id = conn.execute(sa.select(users.c.organization_id)
                          .where(users.c.id == found.user_id)).scalar_one()
    trail.record(conn, action="auth.password_reset", actor=f"user:{found.user_id}",
                 target=found.user_id, organization_id=org_id, ip=ip,
                 detail={"sessions_ended": ended})
    return User(found.user_id, found.email, org_id), password_changed_email(found.email, now, ip)


async def confirm_password_reset(db: Database, *, token: str, password: str, ip: str,
                                 rules: AuthRules, secret: bytes) -> tuple[User, EmailMessage]:
    """Check the link and the policy, hash (outside any transaction), then use the link."""
    email = await db.run(functools.partial(reset_email_address, token=token, secret=secret))
    check_password_policy(password, min_length=rules.password_min_length, email=email)
    password_hash = await asyncio.to_thread(hash_password, password)
    return await db.run(functools.partial(finish_password_reset, token=token,
                                          password_hash=password_hash, ip=ip, secret=secret))
