"""Single-use links sent by email (verify an address, reset a password).

The token travels only in the link; the database keeps its keyed hash. A new token of a
purpose supersedes the user's earlier ones, so only the newest link works."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa

from faregate.db.schema import email_tokens, users
from faregate.errors import InvalidRequest
from faregate.kit.crypto import keyed_hash, new_token

Purpose = Literal["verify", "reset"]
_MAX_TOKEN_CHARS = 200


@dataclass(frozen=True, slots=True)
class EmailToken:
    token_hash: str
    user_id: str
    email: str
    expires_at: dt.datetime


def token_hash(token: str, *, purpose: Purpose, secret: bytes) -> str:
    return keyed_hash(secret, token, purpose=f"email:{purpose}")


def issue_email_token(conn: sa.Connection, *, user_id: str, email: str, purpose: Purpose,
                      ttl_s: int, secret: bytes, now: dt.datetime | None = None) -> str:
    """Store a new token (superseding the user's unused ones of this purpose); return it."""
    now = now or dt.datetime.now(dt.UTC)
    conn.execute(email_tokens.update()
                 .where(email_tokens.c.user_id == user_id, email_tokens.c.purpose == purpose,
                        email_tokens.c.used_at.is_(None))
                 .values(used_at=now))
    token = new_token()
    conn.execute(email_tokens.insert().values(
        token_hash=token_hash(token, purpose=purpose, secret=secret), user_id=user_id,
        purpose=purpose, email=email, created_at=now,
        expires_at=now + dt.timedelta(seconds=ttl_s)))
    return token


def find_email_token(conn: sa.Connection, token: str, *, purpose: Purpose, secret: bytes,
                     now: dt.datetime | None = None) -> EmailToken:
    """The usable token, or InvalidRequest saying why not (unknown, used, expired, or sent to
    an address the account no longer has)."""
    now = now or dt.datetime.now(dt.UTC)
    row = None
    if token and len(token) <= _MAX_TOKEN_CHARS:
        row = conn.execute(
            sa.select(email_tokens, users.c.email.label("current_email"))
            .join(users, users.c.id == email_tokens.c.user_id)
            .where(email_tokens.c.token_hash == token_hash(token, purpose=purpose,
                                                           secret=secret),
                   email_tokens.c.purpose == purpose)).first()
    if row is None or row.email != row.current_email:
        raise InvalidRequest("This link is not valid. Check that you copied all of it, or "
                             "request a new one.", param="token", code="invalid_token")
    if row.used_at is not None:
        raise InvalidRequest("This link has already been used, or a newer one was sent. "
                             "Request a new one if you need it.", param="token",
                             code="token_used")
    if row.expires_at <= now:
        raise InvalidRequest("This link has expired. Please request a new one.", param="token",
                             code="token_expired")
    return EmailToken(row.token_hash, row.user_id, row.email, row.expires_at)


def use_email_token(conn: sa.Connection, token: str, *, purpose: Purpose, secret: bytes,
                    now: dt.datetime | None = None) -> EmailToken:
    """Find the token and mark it used, once: of two concurrent uses only one succeeds."""
    now = now or dt.datetime.now(dt.UTC)
    found = find_email_token(conn, token, purpose=purpose, secret=secret, now=now)
    used = conn.execute(email_tokens.update()
                        .where(email_tokens.c.token_hash == found.token_hash,
                               email_tokens.c.used_at.is_(None))
                        .values(used_at=now)).rowcount
    if used != 1:
        raise InvalidRequest("This link has already been used.", param="token",
                             code="token_used")
    return found


def prune_email_tokens(conn: sa.Connection, *, keep_days: int = 30) -> int:
    """Delete links that expired more than `keep_days` ago."""
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=keep_days)
    return conn.execute(email_tokens.delete().where(email_tokens.c.expires_at < cutoff)).rowcount
