"""Finding users and organizations for the operator console: by a fragment of an email address
or a name, or by exact id. Pages are ordered by id and continue after the last id seen (keyset
paging: a page never repeats or skips a row while others sign up)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from faregate.db.schema import memberships, organizations, users

MAX_PAGE = 200


@dataclass(frozen=True, slots=True)
class UserHit:
    id: str
    email: str
    organization_id: str
    created_at: dt.datetime
    deactivated_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class OrgHit:
    id: str
    name: str
    created_at: dt.datetime
    deactivated_at: dt.datetime | None
    members: int


@dataclass(frozen=True, slots=True)
class UserPage:
    data: list[UserHit]
    next_cursor: str | None  # the last id of this page when there may be more


@dataclass(frozen=True, slots=True)
class OrgPage:
    data: list[OrgHit]
    next_cursor: str | None


def _fragment(query: str) -> str:
    return query.strip().lower()


def search_users(conn: sa.Connection, query: str = "", *, limit: int = 50,
                 cursor: str | None = None) -> UserPage:
    """Users whose email contains `query` (case-insensitive) or whose id is `query`."""
    limit = max(1, min(limit, MAX_PAGE))
    u = users.c
    q = (sa.select(u.id, u.email, u.organization_id, u.created_at, u.deactivated_at)
         .order_by(u.id).limit(limit + 1))
    text = _fragment(query)
    if text:
        # Addresses are stored in their canonical lower-case form.
        q = q.where(sa.or_(u.id == query.strip(), u.email.contains(text, autoescape=True)))
    if cursor:
        q = q.where(u.id > cursor)
    rows = conn.execute(q).all()
    hits = [UserHit(r.id, r.email, r.organization_id, r.created_at, r.deactivated_at)
            for r in rows[:limit]]
    return UserPage(hits, hits[-1].id if len(rows) > limit else None)


def search_orgs(conn: sa.Connection, query: str = "", *, limit: int = 50,
                cursor: str | None = None) -> OrgPage:
    """Organizations whose name contains `query` (case-insensitive), whose id is `query`, or
    with a member whose email contains it."""
    limit = max(1, min(limit, MAX_PAGE))
    o = organizations.c
    members = (sa.select(sa.func.count()).where(memberships.c.organization_id == o.id)
               .correlate(organizations).scalar_subquery())
    q = (sa.select(o.id, o.name, o.created_at, o.deactivated_at, members.label("members"))
         .order_by(o.id).limit(limit + 1))
    text = _fragment(query)
    if text:
        by_member = (sa.select(memberships.c.organization_id)
                     .join(users, users.c.id == memberships.c.user_id)
                     .where(users.c.email.contains(text, autoescape=True)))
        q = q.where(sa.or_(o.id == query.strip(),
                           sa.func.lower(o.name).contains(text, autoescape=True),
                           o.id.in_(by_member)))
    if cursor:
        q = q.where(o.id > cursor)
    rows = conn.execute(q).all()
    hits = [OrgHit(r.id, r.name, r.created_at, r.deactivated_at, int(r.members))
            for r in rows[:limit]]
    return OrgPage(hits, hits[-1].id if len(rows) > limit else None)
