"""Upstream changes (audited, secrets never in the trail, the catalog fingerprint moves) and the
per-process figures the console sums, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from faregate.catalog import upstream_admin
from faregate.catalog.service import catalog_version, load_snapshot
from faregate.catalog.upstream_admin import UpstreamChange
from faregate.db.schema import audit_events
from faregate.errors import InvalidRequest, NotFound
from faregate.kit.crypto import Cipher
from faregate.upstream.stats import StatsRow

CIPHER = Cipher(b"s" * 32)
SECRET = "sk-upstream-secret-123"


def _events(conn: sa.Connection) -> list[tuple[str, str, dict[str, object]]]:
    rows = conn.execute(sa.select(audit_events).order_by(audit_events.c.id)).all()
    return [(str(r.action), str(r.actor), json.loads(r.detail)) for r in rows
            if str(r.action).startswith("upstream.")]


def _row(upstream_id: int, *, requests: int, failures: int, state: str = "closed",
         health_ok: bool | None = True) -> StatsRow:
    now = dt.datetime.now(dt.UTC)
    return StatsRow(upstream_id, "x", requests, failures, 1, 100 * requests, requests,
                    state,  # type: ignore[arg-type]
                    now + dt.timedelta(seconds=30) if state == "open" else None,
                    "HTTP 503" if failures else None, now if failures else None, health_ok, now)


def test_changes_are_audited_and_move_the_fingerprint(engine: Engine) -> None:
    with engine.begin() as conn:
        made = upstream_admin.create_upstream(
            conn, name="prov-a", base_url="http://127.0.0.1:9/v1", model_map={"m1": "m1"},
            api_key=SECRET, api_key_env=None, cipher=CIPHER, actor="cli:test", priority=2,
            weight=3)
        assert (made.priority, made.weight, made.has_stored_key) == (2, 3, True)
        v1 = catalog_version(conn)
        changed = upstream_admin.change_upstream(
            conn, made.id, UpstreamChange(weight=5, enabled=False, read_timeout_ms=1000),
            actor="operator:op_1", ip="10.0.0.1")
        assert (changed.weight, changed.enabled, changed.read_timeout_ms) == (5, False, 1000)
        v2 = catalog_version(conn)
        assert v2 != v1
        assert "m1" not in load_snapshot(conn, CIPHER, "http://x").routes  # disabled
        upstream_admin.change_upstream(conn, made.id, UpstreamChange(enabled=True),
                                       actor="operator:op_1")
        mapped = upstream_admin.map_model(conn, made.id, "m2", "their-m2", actor="cli:test")
        assert mapped.models == {"m1": "m1", "m2": "their-m2"}
        route = load_snapshot(conn, CIPHER, "http://x").routes["m2"][0]
        assert (route.upstream_model, route.api_key, route.priority, route.weight) == \
            ("their-m2", SECRET, 2, 5)
        remapped = upstream_admin.map_model(conn, made.id, "m2", "other", actor="cli:test")
        assert remapped.models["m2"] == "other"
        v3 = catalog_version(conn)
        left = upstream_admin.unmap_model(conn, made.id, "m2", actor="cli:test")
        assert left.models == {"m1": "m1"}
        assert catalog_version(conn) != v3
        with pytest.raises(NotFound):
            upstream_admin.unmap_model(conn, made.id, "m2", actor="cli:test")
        with pytest.raises(InvalidRequest):
            upstream_admin.change_upstream(conn, made.id, UpstreamChange(weight=0),
                                           actor="cli:test")
        with pytest.raises(NotFound):
            upstream_admin.change_upstream(conn, 99999, UpstreamChange(weight=2),
                                           actor="cli:test")
        events = _events(conn)
        raw = conn.execute(sa.select(audit_events.c.detail)).scalars().all()
    assert SECRET not in "".join(str(d) for d in raw)
    actions = [e[0] for e in events]
    assert actions == ["upstream.created", "upstream.changed", "upstream.changed",
                       "upstream.model_mapped", "upstream.model_mapped",
                       "upstream.model_unmapped"]
    created = events[0][2]
    assert created["before"] is None and created["after"]["has_stored_key"] is True
    change = events[1]
    assert change[1] == "operator:op_1"
    assert change[2]["before"] == {"weight": 3, "enabled": True, "read_timeout_ms": 600000}
    assert change[2]["after"] == {"weight": 5, "enabled": False, "read_timeout_ms": 1000}


def test_figures_sum_instances_and_breaker_from_live_ones(engine: Engine) -> None:
    with engine.begin() as conn:
        a = upstream_admin.create_upstream(
            conn, name="fig-a", base_url="http://127.0.0.1:9/v1", model_map={"fm": "fm"},
            api_key=None, api_key_env=None, cipher=CIPHER, actor="t")
        b = upstream_admin.create_upstream(
            conn, name="fig-b", base_url="http://127.0.0.1:8/v1", model_map={"fm": "fm"},
            api_key=None, api_key_env=None, cipher=CIPHER, actor="t")
        now = dt.datetime.now(dt.UTC)
        upstream_admin.write_stats(conn, "ins_one", [_row(a.id, requests=10, failures=2)], now)
        upstream_admin.write_stats(conn, "ins_two", [
            _row(a.id, requests=5, failures=5, state="open", health_ok=False),
            _row(b.id, requests=4, failures=0),
            _row(987654, requests=1, failures=1)], now)  # an upstream that is gone: skipped
        # rewriting is an overwrite (counters are cumulative per process)
        upstream_admin.write_stats(conn, "ins_one", [_row(a.id, requests=12, failures=2)], now)
        # a process that stopped a while ago: counted, but its breaker is not live
        upstream_admin.write_stats(conn, "ins_old", [
            _row(b.id, requests=6, failures=6, state="open")], now - dt.timedelta(minutes=2))
        figures = {f.upstream.name: f for f in
                   upstream_admin.upstream_figures(conn, 15.0, now + dt.timedelta(seconds=1))}
        fa, fb = figures["fig-a"], figures["fig-b"]
        assert (fa.requests, fa.failures, fa.failovers, fa.instances) == (17, 7, 2, 2)
        assert fa.error_rate == pytest.approx(7 / 17)
        assert fa.mean_latency_ms == pytest.approx(100.0)
        assert fa.breaker == "open" and fa.breaker_open_until is not None
        assert fa.health == "failing" and fa.last_error == "HTTP 503"
        assert (fb.requests, fb.failures, fb.instances) == (10, 6, 1)
        assert fb.breaker == "closed" and fb.health == "ok"
        # figures of processes silent for STATS_KEEP are dropped by the next write
        upstream_admin.write_stats(conn, "ins_one", [], now + dt.timedelta(minutes=9))
        left = {f.upstream.name: f for f in upstream_admin.upstream_figures(
            conn, 15.0, now + dt.timedelta(minutes=9))}
        assert left["fig-b"].requests == 4
