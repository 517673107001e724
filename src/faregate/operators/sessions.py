"""Operator sessions: separate from user sessions (own table, own cookie), shorter lived.

A session ends when it expires, when it has been idle too long, when it is revoked (sign-out,
password change, TOTP reset, disabling the operator) — and at once for an operator who is
disabled, whatever the session's state."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from faregate.audit.changes import operator_actor
from faregate.db.schema import operator_sessions, operators
from faregate.kit.crypto import keyed_hash, new_token
from faregate.kit.ids import new_id
from faregate.operators.rules import Role, as_role

# last_seen_at is written at most this often per session, not on every request.
_TOUCH_EVERY = dt.timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class OperatorPrincipal:
    """The operator behind a request (from their session)."""

    session_id: str
    operator_id: str
    email: str
    name: str | None
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def actor(self) -> str:
        """How the audit trail names them."""
        return operator_actor(self.operator_id)


def _hash(token: str, secret: bytes) -> str:
    return keyed_hash(secret, token, purpose="operator_session")


def create_session(conn: sa.Connection, *, operator_id: str, ip: str | None,
                   user_agent: str | None, ttl_s: int, secret: bytes) -> tuple[str, str]:
    """Start a session; returns (session id, token). The token goes only into the cookie."""
    token = new_token()
    session_id = new_id("opsess")
    now = dt.datetime.now(dt.UTC)
    conn.execute(operator_sessions.insert().values(
        id=session_id, token_hash=_hash(token, secret), operator_id=operator_id,
        created_at=now, expires_at=now + dt.timedelta(seconds=ttl_s), last_seen_at=now, ip=ip,
        user_agent=(user_agent or "")[:300] or None))
    return session_id, token


def authenticate(conn: sa.Connection, token: str, *, secret: bytes, idle_s: int,
                 now: dt.datetime | None = None) -> OperatorPrincipal | None:
    """The live session of an enabled operator this token belongs to, or None."""
    if not token or len(token) > 200:
        return None
    now = now or dt.datetime.now(dt.UTC)
    s, o = operator_sessions.c, operators.c
    row = conn.execute(
        sa.select(s.id, s.operator_id, s.expires_at, s.last_seen_at, s.revoked_at, o.email,
                  o.name, o.role, o.disabled_at)
        .join(operators, o.id == s.operator_id)
        .where(s.token_hash == _hash(token, secret))).first()
    if (row is None or row.revoked_at is not None or row.disabled_at is not None
            or row.expires_at <= now or row.last_seen_at + dt.timedelta(seconds=idle_s) <= now):
        return None
    if now - row.last_seen_at >= _TOUCH_EVERY:
        conn.execute(operator_sessions.update().where(s.id == row.id).values(last_seen_at=now))
    return OperatorPrincipal(row.id, row.operator_id, row.email, row.name, as_role(row.role))


def revoke(conn: sa.Connection, session_id: str) -> None:
    conn.execute(operator_sessions.update()
                 .where(operator_sessions.c.id == session_id,
                        operator_sessions.c.revoked_at.is_(None))
                 .values(revoked_at=dt.datetime.now(dt.UTC)))


def revoke_all(conn: sa.Connection, operator_id: str, *,
               except_session_id: str | None = None) -> int:
    """End every session of an operator, but perhaps the current one."""
    q = operator_sessions.update().where(operator_sessions.c.operator_id == operator_id,
                                         operator_sessions.c.revoked_at.is_(None))
    if except_session_id is not None:
        q = q.where(operator_sessions.c.id != except_session_id)
    return conn.execute(q.values(revoked_at=dt.datetime.now(dt.UTC))).rowcount


def prune_sessions(conn: sa.Connection, *, keep_days: int = 30) -> int:
    """Delete sessions that ended more than `keep_days` ago (the audit trail keeps the story)."""
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=keep_days)
    return conn.execute(operator_sessions.delete().where(
        sa.or_(operator_sessions.c.expires_at < cutoff,
               operator_sessions.c.revoked_at < cutoff))).rowcount
