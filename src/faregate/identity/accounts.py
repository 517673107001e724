"""Signing up, signing out and changing the password.

As in `signin`, password hashing runs between two short transactions, never inside one; a
refusal that must leave a trace (a wrong current password) is committed before it is raised.
Emails are returned, for the caller to send after the commit."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from dataclasses import dataclass, field

import sqlalchemy as sa

from faregate.audit import trail
from faregate.db.runner import Database
from faregate.db.schema import users
from faregate.errors import InvalidRequest, Refused
from faregate.identity import sessions
from faregate.identity.email_tokens import issue_email_token
from faregate.identity.mail import password_changed_email, verification_email
from faregate.identity.names import MAX_NAME_CHARS
from faregate.identity.passwords import check_password_policy, hash_password, verify_password
from faregate.identity.rules import HOUR_S, AuthRules
from faregate.identity.signin import check_account_limit, count_account_attempt
from faregate.identity.users import User, create_user, normalize_email
from faregate.notify.email import EmailMessage
from faregate.throttle import limiter

SIGN_UP_SCOPE = "sign_up:ip"
EMAIL_TAKEN = ("An account with this email already exists. Sign in or reset your password.")


@dataclass(frozen=True, slots=True)
class SignedUp:
    user: User
    session_id: str
    token: str = field(repr=False)  # for the cookie only
    email: EmailMessage = field(repr=False)  # the verification link


def verification_message(conn: sa.Connection, *, user_id: str, email: str, rules: AuthRules,
                         secret: bytes) -> EmailMessage:
    """A new verification link (superseding earlier ones), as the email to send."""
    token = issue_email_token(conn, user_id=user_id, email=email, purpose="verify",
                              ttl_s=rules.email_verify_ttl_s, secret=secret)
    return verification_email(email, rules.link("/verify-email", token),
                              rules.email_verify_ttl_s)


def email_taken(conn: sa.Connection, email: str) -> bool:
    return conn.execute(sa.select(users.c.id).where(users.c.email == email)).first() is not None


def start_sign_up(conn: sa.Connection, *, email: str, ip: str, rules: AuthRules,
                  secret: bytes) -> bool:
    """Count the sign-up against the address (RateLimited past the hourly limit); return
    whether the email is already taken."""
    limiter.check(conn, scope=SIGN_UP_SCOPE, subject=ip, limit=rules.sign_ups_per_ip_per_hour,
                  window_s=HOUR_S, secret=secret,
                  message="Too many sign-ups from your network.")
    limiter.record(conn, scope=SIGN_UP_SCOPE, subject=ip, secret=secret)
    return email_taken(conn, email)


def create_account(conn: sa.Connection, *, email: str, password_hash: str, name: str | None,
                   ip: str, user_agent: str | None, previous_session_id: str | None,
                   rules: AuthRules, secret: bytes) -> SignedUp:
    """The user (see `create_user`), signed in, with a verification email to send."""
    if email_taken(conn, email):
        raise Refused(EMAIL_TAKEN, param="email", code="email_taken")
    org_name = f"{name}'s organization" if name else None
    # Signed-up organizations start on the free tier and move up as they pay (tiers/).
    user = create_user(conn, email, password_hash=password_hash, organization_name=org_name,
                       tier_override=None)
    if previous_session_id is not None:
        sessions.revoke(conn, previous_session_id)
    session_id, token = sessions.create_session(
        conn, user_id=user.id, ip=ip, user_agent=user_agent, ttl_s=rules.session_ttl_s,
        secret=secret)
    actor = f"user:{user.id}"
    trail.record(conn, action="auth.signed_up", actor=actor, target=user.id,
                 organization_id=user.organization_id, ip=ip)
    trail.record(conn, action="auth.signed_in", actor=actor, target=user.id,
                 organization_id=user.organization_id, ip=ip, detail={"session_id": session_id})
    message = verification_message(conn, user_id=user.id, email=user.email, rules=rules,
                                   secret=secret)
    return SignedUp(user, session_id, token, message)


def clean_display_name(name: str | None) -> str | None:
    if name is None:
        return None
    cleaned = " ".join(name.split())[:MAX_NAME_CHARS - len("'s organization")]
    return cleaned if cleaned and cleaned.isprintable() else None


async def sign_up(db: Database, *, email: str, password: str, name: str | None, ip: str,
                  user_agent: str | None, previous_session_id: str | None, rules: AuthRules,
                  secret: bytes) -> SignedUp:
    """Validate, count against the address, hash (outside any transaction), create."""
    email = normalize_email(email)
    check_password_policy(password, min_length=rules.password_min_length, email=email)
    taken = await db.run(functools.partial(start_sign_up, email=email, ip=ip, rules=rules,
                                           secret=secret))
    if taken:
        raise Refused(EMAIL_TAKEN, param="email", code="email_taken")
    password_hash = await asyncio.to_thread(hash_password, password)
    return await db.run(functools.partial(
        create_account, email=email, password_hash=password_hash,
        name=clean_display_name(name), ip=ip, user_agent=user_agent,
        previous_session_id=previous_session_id, rules=rules, secret=secret))


def sign_out(conn: sa.Connection, *, session_id: str, user_id: str, organization_id: str,
             ip: str) -> None:
    sessions.revoke(conn, session_id)
    trail.record(conn, action="auth.signed_out", actor=f"user:{user_id}", target=user_id,
                 organization_id=organization_id, ip=ip, detail={"session_id": session_id})


# Changing the password -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PasswordOnFile:
    email: str
    organization_id: str
    password_hash: str | None = field(repr=False)


def start_password_change(conn: sa.Connection, *, user_id: str, rules: AuthRules,
                          secret: bytes) -> PasswordOnFile:
    """The stored hash; RateLimited when the account used up its password attempts (wrong
    current passwords count as failed sign-ins)."""
    row = conn.execute(sa.select(users.c.email, users.c.organization_id, users.c.password_hash)
                       .where(users.c.id == user_id)).one()
    check_account_limit(conn, row.email, rules=rules, secret=secret)
    return PasswordOnFile(row.email, row.organization_id, row.password_hash)


def _check_and_hash(stored: str | None, current: str, new: str) -> str | None:
    """The new password's hash if `current` is right, else None."""
    if stored is None or not verify_password(stored, current):
        return None
    return hash_password(new)


def finish_password_change(conn: sa.Connection, *, user_id: str, session_id: str,
                           on_file: PasswordOnFile, new_hash: str | None, ip: str,
                           secret: bytes) -> EmailMessage | None:
    """Store the new hash (if the current password was right and is still the stored one),
    end every other session and return the notice to send; else record the failure and
    return None."""
    now = dt.datetime.now(dt.UTC)
    actor = f"user:{user_id}"
    changed = 0
    if new_hash is not None:
        changed = conn.execute(users.update().where(
            users.c.id == user_id, users.c.password_hash == on_file.password_hash)
            .values(password_hash=new_hash, password_changed_at=now)).rowcount
    if changed != 1:
        attempts = count_account_attempt(conn, on_file.email, secret=secret)
        trail.record(conn, action="auth.password_change_failed", actor=actor, target=user_id,
                     organization_id=on_file.organization_id, ip=ip,
                     detail={"reason": "wrong_password", "attempts": attempts})
        return None
    ended = sessions.revoke_all(conn, user_id, except_session_id=session_id)
    trail.record(conn, action="auth.password_changed", actor=actor, target=user_id,
                 organization_id=on_file.organization_id, ip=ip,
                 detail={"other_sessions_ended": ended})
    return password_changed_email(on_file.email, now, ip)


async def change_password(db: Database, *, user_id: str, email: str, session_id: str,
                          current_password: str, new_password: str, ip: str, rules: AuthRules,
                          secret: bytes) -> EmailMessage:
    """Check the current password and the policy, store the new one, end the other sessions;
    InvalidRequest (committed as a failed attempt) when the current password is wrong."""
    check_password_policy(new_password, min_length=rules.password_min_length, email=email)
    on_file = await db.run(functools.partial(start_password_change, user_id=user_id,
                                             rules=rules, secret=secret))
    new_hash = await asyncio.to_thread(_check_and_hash, on_file.password_hash,
                                       current_password, new_password)
    notice = await db.run(functools.partial(
        finish_password_change, user_id=user_id, session_id=session_id, on_file=on_file,
        new_hash=new_hash, ip=ip, secret=secret))
    if notice is None:
        raise InvalidRequest("Your current password is not correct.", param="current_password",
                             code="incorrect_password")
    return notice
