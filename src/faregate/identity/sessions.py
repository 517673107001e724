"""Browser sessions: a random token in an HttpOnly cookie; the database keeps only its hash.

A session ends when it expires, when it has been idle too long, or when it is revoked (sign-out,
password change or reset) — and at once for a user an operator deactivated."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from faregate.db.schema import sessions, users
from faregate.kit.crypto import keyed_hash, new_token
from faregate.kit.ids import new_id

# last_seen_at is written at most this often per session, not on every request.
_TOUCH_EVERY = dt.timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class SessionUser:
    session_id: str
    user_id: str
    email: str
    email_verified: bool
    personal_organization_id: str
    locale: str | None = None  # the language the user chose in the dashboard, if any


def _hash(token: str, secret: bytes) -> str:
    return keyed_hash(secret, token, purpose="session")


def create_session(conn: sa.Connection, *, user_id: str, ip: str | None,
                   user_agent: str | None, ttl_s: int, secret: bytes) -> tuple[str, str]:
    """Start a session; returns (session id, token). The token goes only into the cookie."""
    token = new_token()
    session_id = new_id("sess")
    now = dt.datetime.now(dt.UTC)
    conn.execute(sessions.insert().values(
        id=session_id, token_hash=_hash(token, secret), user_id=user_id, created_at=now,
        expires_at=now + dt.timedelta(seconds=ttl_s), last_seen_at=now, ip=ip,
        user_agent=(user_agent or "")[:300] or None))
    return session_id, token


def authenticate(conn: sa.Connection, token: str, *, secret: bytes, idle_s: int,
                 now: dt.datetime | None = None) -> SessionUser | None:
    """The live session this token belongs to, or None."""
    if not token or len(token) > 200:
        return None
    now = now or dt.datetime.now(dt.UTC)
    row = conn.execute(
        sa.select(sessions.c.id, sessions.c.user_id, sessions.c.expires_at,
                  sessions.c.last_seen_at, sessions.c.revoked_at, users.c.email,
                  users.c.email_verified_at, users.c.organization_id, users.c.deactivated_at,
                  users.c.locale)
        .join(users, users.c.id == sessions.c.user_id)
        .where(sessions.c.token_hash == _hash(token, secret))).first()
    if (row is None or row.revoked_at is not None or row.deactivated_at is not None
            or row.expires_at <= now
            or row.last_seen_at + dt.timedelta(seconds=idle_s) <= now):
        return None
    if now - row.last_seen_at >= _TOUCH_EVERY:
        conn.execute(sessions.update().where(sessions.c.id == row.id).values(last_seen_at=now))
    return SessionUser(row.id, row.user_id, row.email, row.email_verified_at is not None,
                       row.organization_id, row.locale)


def revoke(conn: sa.Connection, session_id: str) -> None:
    conn.execute(sessions.update()
                 .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
                 .values(revoked_at=dt.datetime.now(dt.UTC)))


def revoke_all(conn: sa.Connection, user_id: str, *, except_session_id: str | None = None) -> int:
    """End every session of a user (password changed or reset), but perhaps the current one."""
    q = sessions.update().where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
    if except_session_id is not None:
        q = q.where(sessions.c.id != except_session_id)
    return conn.execute(q.values(revoked_at=dt.datetime.now(dt.UTC))).rowcount


def prune_sessions(conn: sa.Connection, *, keep_days: int = 30) -> int:
    """Delete sessions that ended more than `keep_days` ago (the audit trail keeps the story)."""
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=keep_days)
    return conn.execute(sessions.delete().where(
        sa.or_(sessions.c.expires_at < cutoff, sessions.c.revoked_at < cutoff))).rowcount
