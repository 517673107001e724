"""Record and read audit events. Rows are only ever inserted: there is no update or delete."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from faregate.db.schema import audit_events


@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: int
    created_at: dt.datetime
    action: str
    actor: str
    target: str | None
    organization_id: str | None
    ip: str | None
    detail: dict[str, Any] | None


def record(conn: sa.Connection, *, action: str, actor: str, target: str | None = None,
           organization_id: str | None = None, ip: str | None = None,
           detail: dict[str, Any] | None = None) -> None:
    """Append one event in the caller's transaction. `detail` must hold no secret."""
    conn.execute(audit_events.insert().values(
        created_at=dt.datetime.now(dt.UTC), action=action, actor=actor, target=target,
        organization_id=organization_id, ip=ip,
        detail=orjson.dumps(detail).decode() if detail else None))


def list_events(conn: sa.Connection, *, organization_id: str | None = None,
                actor: str | None = None, action: str | None = None, limit: int = 100,
                before_id: int | None = None) -> list[AuditEvent]:
    """Newest first; page with `before_id` (the last id of the previous page)."""
    q = sa.select(audit_events).order_by(audit_events.c.id.desc()).limit(min(limit, 1000))
    if organization_id is not None:
        q = q.where(audit_events.c.organization_id == organization_id)
    if actor is not None:
        q = q.where(audit_events.c.actor == actor)
    if action is not None:
        q = q.where(audit_events.c.action == action)
    if before_id is not None:
        q = q.where(audit_events.c.id < before_id)
    return [AuditEvent(int(r.id), r.created_at, r.action, r.actor, r.target, r.organization_id,
                       r.ip, orjson.loads(r.detail) if r.detail else None)
            for r in conn.execute(q)]
