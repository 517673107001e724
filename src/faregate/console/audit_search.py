"""Searching the audit trail: by actor, action (exact, or a prefix ending in `*`), target,
organization and time, newest first, paged by event id. The trail is append-only (the database
refuses UPDATE and DELETE on it); nothing here writes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import orjson
import sqlalchemy as sa

from faregate.audit.trail import AuditEvent
from faregate.db.schema import audit_events

MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class AuditQuery:
    actor: str | None = None
    action: str | None = None  # "credit.granted", or "credit.*" for every credit action
    target: str | None = None
    organization_id: str | None = None
    since: dt.datetime | None = None  # inclusive
    until: dt.datetime | None = None  # exclusive


@dataclass(frozen=True, slots=True)
class AuditPage:
    data: list[AuditEvent]
    next_cursor: int | None  # pass as `before_id` for the next (older) page


def _of(r: sa.Row[tuple[object, ...]]) -> AuditEvent:
    m = r._mapping
    detail = m["detail"]
    return AuditEvent(int(m["id"]), m["created_at"], m["action"], m["actor"], m["target"],
                      m["organization_id"], m["ip"],
                      orjson.loads(detail) if isinstance(detail, str) and detail else None)


def search_events(conn: sa.Connection, query: AuditQuery, *, limit: int = 100,
                  before_id: int | None = None) -> AuditPage:
    limit = max(1, min(limit, MAX_PAGE))
    c = audit_events.c
    q = sa.select(audit_events).order_by(c.id.desc()).limit(limit + 1)
    if query.actor:
        q = q.where(c.actor == query.actor)
    if query.action:
        if query.action.endswith("*"):
            q = q.where(c.action.startswith(query.action[:-1], autoescape=True))
        else:
            q = q.where(c.action == query.action)
    if query.target:
        q = q.where(c.target == query.target)
    if query.organization_id:
        q = q.where(c.organization_id == query.organization_id)
    if query.since is not None:
        q = q.where(c.created_at >= query.since)
    if query.until is not None:
        q = q.where(c.created_at < query.until)
    if before_id is not None:
        q = q.where(c.id < before_id)
    rows = conn.execute(q).all()
    events = [_of(r) for r in rows[:limit]]
    return AuditPage(events, events[-1].id if len(rows) > limit else None)


def events_about(conn: sa.Connection, targets: list[str], *, organization_id: str | None = None,
                 actor: str | None = None, limit: int = 50) -> list[AuditEvent]:
    """The newest events whose target is one of `targets`, that belong to the organization,
    or that `actor` took: what an overview shows."""
    c = audit_events.c
    where: list[sa.ColumnElement[bool]] = [c.target.in_(targets)]
    if actor is not None:
        where.append(c.actor == actor)
    if organization_id is not None:
        where.append(c.organization_id == organization_id)
    rows = conn.execute(sa.select(audit_events).where(sa.or_(*where))
                        .order_by(c.id.desc()).limit(limit)).all()
    return [_of(r) for r in rows]
