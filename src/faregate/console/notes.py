"""Support notes: what operators (support included: the one thing support may write) record
about a user or an organization. Notes are only ever added, and each is in the audit trail.

A note's target is `user:ID` or `org:ID`, the same form the console's audit events use."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from faregate.audit.changes import record_change
from faregate.db.schema import organizations, support_notes, users
from faregate.errors import InvalidRequest, NotFound
from faregate.kit.ids import new_id

MAX_NOTE_CHARS = 5000


def org_target(organization_id: str) -> str:
    return f"org:{organization_id}"


def user_target(user_id: str) -> str:
    return f"user:{user_id}"


@dataclass(frozen=True, slots=True)
class Note:
    id: str
    target: str
    organization_id: str | None
    operator_id: str
    body: str
    created_at: dt.datetime


def resolve_target(conn: sa.Connection, target: str) -> str | None:
    """The organization a `user:ID` / `org:ID` target belongs to (a user's personal one);
    NotFound when there is no such user or organization."""
    kind, _, ident = target.partition(":")
    if kind == "org":
        found = conn.execute(sa.select(organizations.c.id)
                             .where(organizations.c.id == ident)).scalar()
    elif kind == "user":
        found = conn.execute(sa.select(users.c.organization_id)
                             .where(users.c.id == ident)).scalar()
    else:
        raise InvalidRequest("A target is user:ID or org:ID.", param="target",
                             code="invalid_target")
    if found is None:
        raise NotFound(f"No {'organization' if kind == 'org' else 'user'} {ident!r}.",
                       param="target", code="target_not_found")
    return str(found)


def add_note(conn: sa.Connection, *, target: str, body: str, operator_id: str, actor: str,
             ip: str | None = None) -> Note:
    text = body.strip()
    if not text or len(text) > MAX_NOTE_CHARS:
        raise InvalidRequest(f"A note is 1 to {MAX_NOTE_CHARS} characters.", param="body")
    organization_id = resolve_target(conn, target)
    note = Note(new_id("note"), target, organization_id, operator_id, text,
                dt.datetime.now(dt.UTC))
    conn.execute(support_notes.insert().values(
        id=note.id, target=target, organization_id=organization_id, operator_id=operator_id,
        body=text, created_at=note.created_at))
    record_change(conn, actor=actor, action="note.added", target=target, before=None,
                  after={"note_id": note.id, "body": text}, ip=ip,
                  organization_id=organization_id)
    return note


def list_notes(conn: sa.Connection, targets: list[str], *, limit: int = 100) -> list[Note]:
    """Notes on any of `targets`, newest first."""
    n = support_notes.c
    rows = conn.execute(sa.select(support_notes).where(n.target.in_(targets))
                        .order_by(n.created_at.desc(), n.id.desc()).limit(limit)).all()
    return [Note(r.id, r.target, r.organization_id, r.operator_id, r.body, r.created_at)
            for r in rows]
