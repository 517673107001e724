"""Request logs: the bodies of a request and of its response, kept for a few days when an
operator turns logging on for an organization (or for every request), for debugging.

Only bodies are kept, never a header (so never a key). Each body is capped at
FAREGATE_REQUEST_LOG_MAX_BYTES (a marker says how much was cut), compressed and encrypted
(kit/sealed.py) before it is written. The gateway captures them and a background writer
seals and inserts them off the request path (gateway/request_log.py); the worker deletes them
after FAREGATE_REQUEST_LOG_RETENTION_DAYS (worker/log_jobs.py)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from faregate.audit import trail
from faregate.db.schema import organizations, request_logs
from faregate.errors import InvalidRequest, NotFound
from faregate.kit.sealed import Sealer

PURPOSE = "request-log"  # the sealer's key is derived for this purpose only
MAX_DAYS = 90
PRUNE_BATCH = 1000
_MODEL = re.compile(rb'"model"\s*:\s*"([^"\\]{1,200})"')


def sealer_for(encryption_key: bytes) -> Sealer:
    return Sealer(encryption_key, purpose=PURPOSE)


@dataclass(frozen=True, slots=True)
class Captured:
    """What the gateway saw of one request: the first bytes of each body, and their sizes."""

    request_id: str
    organization_id: str
    created_at: dt.datetime
    endpoint: str
    status_code: int
    request: bytes
    request_bytes: int
    response: bytes
    response_bytes: int

    @property
    def truncated(self) -> bool:
        return len(self.request) < self.request_bytes or len(self.response) < self.response_bytes

    @property
    def kept_bytes(self) -> int:
        return len(self.request) + len(self.response)


@dataclass(frozen=True, slots=True)
class LogEntry:
    request_id: str
    organization_id: str
    created_at: dt.datetime
    endpoint: str
    model: str | None
    status_code: int
    request: bytes
    response: bytes
    request_bytes: int
    response_bytes: int
    truncated: bool

    def as_json(self, retention_days: int) -> dict[str, Any]:
        expires = self.created_at + dt.timedelta(days=retention_days)
        return {
            "object": "faregate.request_log", "request_id": self.request_id,
            "created_at": self.created_at.isoformat(), "expires_at": expires.isoformat(),
            "endpoint": self.endpoint, "model": self.model, "status_code": self.status_code,
            "request_body": self.request.decode("utf-8", "replace"),
            "response_body": self.response.decode("utf-8", "replace"),
            "request_bytes": self.request_bytes, "response_bytes": self.response_bytes,
            "truncated": self.truncated}


def _with_marker(kept: bytes, total: int) -> bytes:
    if len(kept) >= total:
        return kept
    return kept + (f"\n[truncated by Faregate: {len(kept)} of {total} bytes kept]").encode()


def _model_of(request: bytes, whole: bool) -> str | None:
    if whole:
        try:
            body = orjson.loads(request)
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict):
            model = body.get("model")
            return model[:200] if isinstance(model, str) else None
    found = _MODEL.search(request)
    return found.group(1).decode("utf-8", "replace") if found else None


def sealed_rows(captured: list[Captured], sealer: Sealer) -> list[dict[str, Any]]:
    """The rows to insert (CPU work: run it off the event loop)."""
    return [{
        "request_id": c.request_id, "organization_id": c.organization_id,
        "created_at": c.created_at, "endpoint": c.endpoint,
        "model": _model_of(c.request, len(c.request) >= c.request_bytes),
        "status_code": c.status_code,
        "request_sealed": sealer.seal(_with_marker(c.request, c.request_bytes)),
        "response_sealed": sealer.seal(_with_marker(c.response, c.response_bytes)),
        "request_bytes": c.request_bytes, "response_bytes": c.response_bytes,
        "truncated": c.truncated,
    } for c in captured]


def write_logs(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(request_logs.insert(), rows)


def read_log(conn: sa.Connection, request_id: str, sealer: Sealer, *,
             organization_id: str | None) -> LogEntry | None:
    """One request's log, opened; only within `organization_id` unless it is None (operators)."""
    q = sa.select(request_logs).where(request_logs.c.request_id == request_id)
    if organization_id is not None:
        q = q.where(request_logs.c.organization_id == organization_id)
    row = conn.execute(q).first()
    if row is None:
        return None
    return LogEntry(
        row.request_id, row.organization_id, row.created_at, row.endpoint, row.model,
        int(row.status_code), sealer.open(row.request_sealed), sealer.open(row.response_sealed),
        int(row.request_bytes), int(row.response_bytes), bool(row.truncated))


def prune_logs(conn: sa.Connection, *, before: dt.datetime, limit: int = PRUNE_BATCH) -> int:
    """Delete up to `limit` logs created before `before`; returns how many."""
    ids = sa.select(request_logs.c.request_id).where(
        request_logs.c.created_at < before).order_by(request_logs.c.created_at).limit(limit)
    found = list(conn.execute(ids).scalars())
    if not found:
        return 0
    conn.execute(request_logs.delete().where(request_logs.c.request_id.in_(found)))
    return len(found)


def logging_until(conn: sa.Connection, organization_id: str) -> dt.datetime | None:
    """Until when the organization's requests are logged (None: not logged)."""
    row = conn.execute(sa.select(organizations.c.request_logging_until)
                       .where(organizations.c.id == organization_id)).first()
    if row is None:
        raise NotFound(f"No organization {organization_id!r}.")
    until: dt.datetime | None = row.request_logging_until
    return until if until is not None and until > dt.datetime.now(dt.UTC) else None


def set_logging(conn: sa.Connection, organization_id: str, *, days: int | None,
                actor: str) -> dt.datetime | None:
    """Log the organization's requests for `days` from now, or stop (None). Recorded in the
    organization's audit trail, which its owners read. Servers see the change within 2 s (the
    API key cache). Logs already written stay until the retention deletes them."""
    if days is not None and not 1 <= days <= MAX_DAYS:
        raise InvalidRequest(f"Request logging can be turned on for 1 to {MAX_DAYS} days.",
                             param="days")
    before = logging_until(conn, organization_id)
    until = None if days is None else dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
    conn.execute(organizations.update().where(organizations.c.id == organization_id)
                 .values(request_logging_until=until))
    if until is not None:
        trail.record(conn, action="request_logging.enabled", actor=actor,
                     target=organization_id, organization_id=organization_id,
                     detail={"until": until.isoformat(), "days": days})
    elif before is not None:
        trail.record(conn, action="request_logging.disabled", actor=actor,
                     target=organization_id, organization_id=organization_id)
    return until
