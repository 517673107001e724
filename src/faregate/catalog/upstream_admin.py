"""Operator changes to upstreams (console and CLI), each audited with before/after, and the
per-process upstream figures (upstream_stats) the servers write and the console reads.

Every write sets upstreams.updated_at, which the catalog fingerprint watches, so the gateway
routes with the change within a second or so. API keys are stored encrypted and never appear in
a result or in the audit trail (only whether one is stored)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from faregate.audit.changes import record_change
from faregate.catalog.service import (
    UpstreamInfo,
    add_upstream,
    ensure_model,
    get_upstream,
    list_upstreams,
)
from faregate.db.schema import models, upstream_models, upstream_stats, upstreams
from faregate.errors import InvalidRequest, NotFound
from faregate.kit.crypto import Cipher
from faregate.upstream.breaker import State
from faregate.upstream.stats import StatsRow

MAX_PRIORITY = 1000
MAX_WEIGHT = 1000
STATS_KEEP = dt.timedelta(minutes=10)  # a stopped process's figures are dropped after this


def _audit_view(u: UpstreamInfo) -> dict[str, Any]:
    """What the audit trail records of an upstream: everything but the key itself."""
    return {"name": u.name, "base_url": u.base_url, "api_key_env": u.api_key_env,
            "has_stored_key": u.has_stored_key, "connect_timeout_ms": u.connect_timeout_ms,
            "read_timeout_ms": u.read_timeout_ms, "enabled": u.enabled, "priority": u.priority,
            "weight": u.weight, "models": dict(u.models)}


def _by_id(conn: sa.Connection, upstream_id: int) -> UpstreamInfo:
    found = [u for u in list_upstreams(conn) if u.id == upstream_id]
    if not found:
        raise NotFound(f"no upstream with id {upstream_id}")
    return found[0]


def find_upstream(conn: sa.Connection, name: str) -> UpstreamInfo:
    return get_upstream(conn, name)


def _check_routing(priority: int | None, weight: int | None) -> None:
    if priority is not None and not 0 <= priority <= MAX_PRIORITY:
        raise InvalidRequest(f"priority must be 0..{MAX_PRIORITY}", param="priority")
    if weight is not None and not 1 <= weight <= MAX_WEIGHT:
        raise InvalidRequest(f"weight must be 1..{MAX_WEIGHT}", param="weight")


def _check_timeouts(connect_ms: int | None, read_ms: int | None) -> None:
    if connect_ms is not None and not 1 <= connect_ms <= 3_600_000:
        raise InvalidRequest("connect timeout must be 1 ms .. 1 h", param="connect_timeout_ms")
    if read_ms is not None and not 1 <= read_ms <= 86_400_000:
        raise InvalidRequest("read timeout must be 1 ms .. 24 h", param="read_timeout_ms")


def _touch(conn: sa.Connection, upstream_id: int, **values: Any) -> None:
    conn.execute(upstreams.update().where(upstreams.c.id == upstream_id).values(
        updated_at=dt.datetime.now(dt.UTC), **values))


def create_upstream(conn: sa.Connection, *, name: str, base_url: str,
                    model_map: dict[str, str], api_key: str | None, api_key_env: str | None,
                    cipher: Cipher, actor: str, priority: int = 0, weight: int = 1,
                    connect_timeout_ms: int = 10_000, read_timeout_ms: int = 600_000,
                    kind: str = "chat", ip: str | None = None) -> UpstreamInfo:
    """Add an upstream (its models are created, price 0, if new), with its routing."""
    if not name or len(name) > 120:
        raise InvalidRequest("an upstream needs a name of 1..120 characters", param="name")
    if not model_map:
        raise InvalidRequest("an upstream serves at least one model", param="models")
    _check_routing(priority, weight)
    _check_timeouts(connect_timeout_ms, read_timeout_ms)
    made = add_upstream(conn, name=name, base_url=base_url, model_map=model_map,
                        api_key=api_key, api_key_env=api_key_env, cipher=cipher,
                        connect_timeout_ms=connect_timeout_ms, read_timeout_ms=read_timeout_ms,
                        kind=kind)
    _touch(conn, made.id, priority=priority, weight=weight)
    made = replace(made, priority=priority, weight=weight)
    record_change(conn, actor=actor, action="upstream.created", target=f"upstream:{made.id}",
                  before=None, after=_audit_view(made), ip=ip)
    return made


@dataclass(frozen=True, slots=True)
class UpstreamChange:
    """Fields to change; None leaves one as it is."""

    priority: int | None = None
    weight: int | None = None
    enabled: bool | None = None
    connect_timeout_ms: int | None = None
    read_timeout_ms: int | None = None


def change_upstream(conn: sa.Connection, upstream_id: int, change: UpstreamChange, *,
                    actor: str, ip: str | None = None) -> UpstreamInfo:
    _check_routing(change.priority, change.weight)
    _check_timeouts(change.connect_timeout_ms, change.read_timeout_ms)
    before = _by_id(conn, upstream_id)
    values = {k: v for k, v in (("priority", change.priority), ("weight", change.weight),
                                ("enabled", change.enabled),
                                ("connect_timeout_ms", change.connect_timeout_ms),
                                ("read_timeout_ms", change.read_timeout_ms)) if v is not None}
    if not values:
        return before
    _touch(conn, upstream_id, **values)
    after = _by_id(conn, upstream_id)
    record_change(conn, actor=actor, action="upstream.changed", target=f"upstream:{after.id}",
                  before=_audit_view(before), after=_audit_view(after), ip=ip,
                  detail={"name": after.name})
    return after


def map_model(conn: sa.Connection, upstream_id: int, model_id: str, upstream_model: str | None,
              *, actor: str, kind: str = "chat", ip: str | None = None) -> UpstreamInfo:
    """Route public model `model_id` to this upstream (under its name `upstream_model`, by
    default the same); the model is created (price 0) if it does not exist."""
    upstream_model = (upstream_model or model_id).strip()
    if not upstream_model or len(upstream_model) > 200:
        raise InvalidRequest("not a valid upstream model name", param="upstream_model")
    before = _by_id(conn, upstream_id)
    ensure_model(conn, model_id, kind=kind)
    done = conn.execute(upstream_models.update().where(
        upstream_models.c.upstream_id == upstream_id, upstream_models.c.model_id == model_id
    ).values(upstream_model=upstream_model))
    if done.rowcount == 0:
        conn.execute(upstream_models.insert().values(
            upstream_id=upstream_id, model_id=model_id, upstream_model=upstream_model))
    _touch(conn, upstream_id)
    after = _by_id(conn, upstream_id)
    record_change(conn, actor=actor, action="upstream.model_mapped",
                  target=f"upstream:{upstream_id}", before={"models": before.models},
                  after={"models": after.models}, ip=ip,
                  detail={"name": after.name, "model": model_id})
    return after


def unmap_model(conn: sa.Connection, upstream_id: int, model_id: str, *, actor: str,
                ip: str | None = None) -> UpstreamInfo:
    before = _by_id(conn, upstream_id)
    if model_id not in before.models:
        raise NotFound(f"upstream {before.name!r} does not serve {model_id!r}")
    conn.execute(upstream_models.delete().where(
        upstream_models.c.upstream_id == upstream_id, upstream_models.c.model_id == model_id))
    _touch(conn, upstream_id)
    after = _by_id(conn, upstream_id)
    record_change(conn, actor=actor, action="upstream.model_unmapped",
                  target=f"upstream:{upstream_id}", before={"models": before.models},
                  after={"models": after.models}, ip=ip,
                  detail={"name": after.name, "model": model_id})
    return after


def model_kind(conn: sa.Connection, model_id: str) -> str | None:
    kind = conn.execute(sa.select(models.c.kind).where(models.c.id == model_id)).scalar()
    return None if kind is None else str(kind)


# --- per-process figures ---------------------------------------------------------------------

def _insert(conn: sa.Connection) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(upstream_stats)
    return sqlite.insert(upstream_stats)


def write_stats(conn: sa.Connection, instance_id: str, rows: Sequence[StatsRow],
                now: dt.datetime | None = None) -> None:
    """Overwrite this process's figures (cumulative since it started) and drop those of
    processes that stopped writing STATS_KEEP ago."""
    now = now or dt.datetime.now(dt.UTC)
    conn.execute(upstream_stats.delete().where(upstream_stats.c.updated_at < now - STATS_KEEP))
    if not rows:
        return
    existing = {int(i) for i in conn.execute(sa.select(upstreams.c.id)).scalars()}
    values = [{
        "instance_id": instance_id, "upstream_id": r.upstream_id, "requests": r.requests,
        "failures": r.failures, "failovers": r.failovers, "latency_ms_sum": r.latency_ms_sum,
        "latency_count": r.latency_count, "breaker_state": r.breaker_state,
        "breaker_open_until": r.breaker_open_until, "last_error": r.last_error,
        "last_error_at": r.last_error_at, "health_ok": r.health_ok,
        "health_checked_at": r.health_checked_at, "updated_at": now,
    } for r in rows if r.upstream_id in existing]  # an upstream deleted meanwhile
    if not values:
        return
    stmt = _insert(conn).values(values)
    keys = {c.name for c in upstream_stats.primary_key.columns}
    conn.execute(stmt.on_conflict_do_update(
        index_elements=list(upstream_stats.primary_key.columns),
        set_={c.name: stmt.excluded[c.name] for c in upstream_stats.columns
              if c.name not in keys}))


@dataclass(frozen=True, slots=True)
class UpstreamFigures:
    """One upstream and its figures summed over the server processes (since each started)."""

    upstream: UpstreamInfo
    requests: int
    failures: int
    failovers: int
    mean_latency_ms: float | None
    breaker: State  # open if any live process has it open; else half_open if any; else closed
    breaker_open_until: dt.datetime | None
    health: Literal["ok", "failing", "unknown"]
    health_checked_at: dt.datetime | None
    last_error: str | None
    last_error_at: dt.datetime | None
    instances: int  # live processes reporting

    @property
    def error_rate(self) -> float | None:
        return self.failures / self.requests if self.requests else None


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def upstream_figures(conn: sa.Connection, live_within_s: float,
                     now: dt.datetime | None = None) -> list[UpstreamFigures]:
    """Every upstream with its figures. Counts are summed over every process that wrote in the
    last STATS_KEEP; breaker and health come from live processes only (written within
    `live_within_s`)."""
    now = now or dt.datetime.now(dt.UTC)
    live_after = now - dt.timedelta(seconds=live_within_s)
    rows: dict[int, list[sa.Row[Any]]] = {}
    for row in conn.execute(sa.select(upstream_stats)).all():
        rows.setdefault(int(row.upstream_id), []).append(row)
    out: list[UpstreamFigures] = []
    for up in list_upstreams(conn):
        mine = rows.get(up.id, [])
        live = [r for r in mine if _utc(r.updated_at) >= live_after]  # type: ignore[operator]
        latency_sum = sum(int(r.latency_ms_sum) for r in mine)
        latency_count = sum(int(r.latency_count) for r in mine)
        states = {str(r.breaker_state) for r in live}
        breaker: State = "open" if "open" in states else \
            "half_open" if "half_open" in states else "closed"
        opens = [u for r in live if r.breaker_state == "open"
                 and (u := _utc(r.breaker_open_until)) is not None]
        checked = [r for r in live if r.health_ok is not None]
        health: Literal["ok", "failing", "unknown"] = "unknown" if not checked else \
            "ok" if all(r.health_ok for r in checked) else "failing"
        errors = sorted((r for r in mine if r.last_error_at is not None),
                        key=lambda r: _utc(r.last_error_at))  # type: ignore[arg-type,return-value]
        out.append(UpstreamFigures(
            upstream=up, requests=sum(int(r.requests) for r in mine),
            failures=sum(int(r.failures) for r in mine),
            failovers=sum(int(r.failovers) for r in mine),
            mean_latency_ms=latency_sum / latency_count if latency_count else None,
            breaker=breaker, breaker_open_until=max(opens) if opens else None,
            health=health,
            health_checked_at=max((_utc(r.health_checked_at) for r in checked),
                                  default=None),  # type: ignore[type-var]
            last_error=str(errors[-1].last_error) if errors else None,
            last_error_at=_utc(errors[-1].last_error_at) if errors else None,
            instances=len(live)))
    return out
