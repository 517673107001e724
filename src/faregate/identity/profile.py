"""What the signed-in user sees of their own account: profile and sessions."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from faregate.audit import trail
from faregate.db.schema import sessions, users
from faregate.errors import InvalidRequest, NotFound
from faregate.identity import sessions as session_service
from faregate.identity.orgs import OrgSummary, list_orgs


@dataclass(frozen=True, slots=True)
class Profile:
    id: str
    email: str
    email_verified: bool
    phone_verified: bool
    phone_masked: str | None
    organizations: list[OrgSummary]
    personal_organization_id: str
    created_at: dt.datetime
    locale: str | None = None


@dataclass(frozen=True, slots=True)
class SessionInfo:
    id: str
    created_at: dt.datetime
    last_seen_at: dt.datetime
    expires_at: dt.datetime
    ip: str | None
    user_agent: str | None
    current: bool


def get_profile(conn: sa.Connection, user_id: str) -> Profile:
    row = conn.execute(sa.select(users).where(users.c.id == user_id)).first()
    if row is None:
        raise NotFound(f"no user with id {user_id!r}")
    verified_phone = row.phone_verified_at is not None
    return Profile(row.id, row.email, row.email_verified_at is not None, verified_phone,
                   row.phone_masked if verified_phone else None, list_orgs(conn, user_id),
                   row.organization_id, row.created_at, row.locale)


LOCALES = ("en", "zh-CN")


def set_locale(conn: sa.Connection, user_id: str, locale: str | None) -> None:
    """Remember the user's language for the dashboard (None: follow the browser)."""
    if locale is not None and locale not in LOCALES:
        raise InvalidRequest(f"locale must be one of {', '.join(LOCALES)}, or null.",
                             param="locale", code="invalid_value")
    done = conn.execute(users.update().where(users.c.id == user_id).values(locale=locale))
    if done.rowcount != 1:
        raise NotFound(f"no user with id {user_id!r}")


def list_user_sessions(conn: sa.Connection, user_id: str, *, current_session_id: str,
                       idle_s: int) -> list[SessionInfo]:
    """The user's live sessions, the most recently used first."""
    now = dt.datetime.now(dt.UTC)
    rows = conn.execute(
        sa.select(sessions)
        .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None),
               sessions.c.expires_at > now,
               sessions.c.last_seen_at > now - dt.timedelta(seconds=idle_s))
        .order_by(sessions.c.last_seen_at.desc(), sessions.c.id))
    return [SessionInfo(r.id, r.created_at, r.last_seen_at, r.expires_at, r.ip, r.user_agent,
                        r.id == current_session_id) for r in rows]


def end_user_session(conn: sa.Connection, user_id: str, session_id: str, *,
                     organization_id: str, ip: str | None = None) -> None:
    """Sign out one of the user's own sessions (NotFound for anyone else's)."""
    owner = conn.execute(sa.select(sessions.c.user_id)
                         .where(sessions.c.id == session_id)).scalar()
    if owner != user_id:
        raise NotFound(f"No session with id {session_id!r}.", param="session_id",
                       code="session_not_found")
    session_service.revoke(conn, session_id)
    trail.record(conn, action="auth.session_revoked", actor=f"user:{user_id}",
                 target=user_id, organization_id=organization_id, ip=ip,
                 detail={"session_id": session_id})
