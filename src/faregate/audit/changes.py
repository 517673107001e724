"""Operator actions in the audit trail, with what they changed.

`record_change` stores `{"before": {...}, "after": {...}}` (only the fields whose value
changed; the whole record on creation or deletion) plus any extra detail in the event's JSON
`detail`, so one search by actor, action or target tells who changed what, from what to what.
Values are made JSON-safe (times as ISO-8601 in UTC). Never pass a secret."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from faregate.audit import trail


def operator_actor(operator_id: str) -> str:
    """The actor of an action taken by a signed-in operator."""
    return f"operator:{operator_id}"


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value


def diff(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
         ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(before, after) reduced to the fields that differ; either may be None (created,
    deleted)."""
    b = _plain(dict(before)) if before is not None else None
    a = _plain(dict(after)) if after is not None else None
    if b is None or a is None:
        return b, a
    keys = [k for k in {**b, **a} if b.get(k) != a.get(k)]
    return {k: b.get(k) for k in keys}, {k: a.get(k) for k in keys}


def record_change(conn: sa.Connection, *, actor: str, action: str, target: str | None,
                  before: Mapping[str, Any] | None, after: Mapping[str, Any] | None,
                  ip: str | None = None, organization_id: str | None = None,
                  detail: Mapping[str, Any] | None = None) -> None:
    """Append one event for an action that changed `target` from `before` to `after`, in the
    caller's transaction."""
    b, a = diff(before, after)
    body: dict[str, Any] = {**_plain(dict(detail or {})), "before": b, "after": a}
    trail.record(conn, action=action, actor=actor, target=target,
                 organization_id=organization_id, ip=ip, detail=body)
