"""Revocation, deactivation, suspension and a price change take effect on every process within
the core's 2-second bound, with Redis up or down: three servers on one PostgreSQL, each with
its caches warm; the changes are made in the database (as the API, console and CLI make them);
2.5 s later every server answers the new way on its first try."""

from __future__ import annotations

import time
from typing import Any

import httpx2
import pytest

from faregate.api_keys.service import revoke_key
from faregate.billing.state import suspend
from faregate.catalog.service import ModelPrice, set_price
from faregate.console.actions import set_org_active
from faregate.pricing.cost import cost
from faregate.tiers.service import set_override
from tests.harness import Deployment, free_port

OLD = ModelPrice(1_000_000_000, 500_000_000, 2_000_000_000)  # $1 / $0.5 / $2 per 1M
NEW = ModelPrice(7_000_000_000, 3_000_000_000, 11_000_000_000)
BOUND_S = 2.0  # FAREGATE_KEY_CACHE_TTL_S's ceiling; the catalog checks its fingerprint each 1 s


def _call(base: str, key: str) -> httpx2.Response:
    return httpx2.post(f"{base}/v1/chat/completions", timeout=30, headers={
        "Authorization": f"Bearer {key}"}, json={
        "model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})


def _error(r: httpx2.Response) -> tuple[int, Any]:
    return r.status_code, r.json()["error"]["code"]


@pytest.mark.parametrize("redis", ["up", "down"])
def test_changes_reach_every_process_within_the_bound(pg_dep: Deployment, redis: str,
                                                      request: pytest.FixtureRequest) -> None:
    dep = pg_dep
    redis_url = (request.getfixturevalue("redis_url") if redis == "up"
                 else f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    upstream = dep.start_devmodel()
    dep.add_upstream("dev", f"{upstream.base_url}/v1", {"m": "faregate-dev"}, OLD)
    users = {name: dep.new_user(f"{name}@example.com", 1_000_000_000)
             for name in ("revoked", "deactivated", "suspended", "priced")}
    keys = {name: dep.new_key(user) for name, user in users.items()}
    with dep.engine.begin() as conn:  # tier 5: rate limited (by Redis when it is up)
        for user in users.values():
            set_override(conn, user.organization_id, 5)
    servers = [dep.start_server(FAREGATE_REDIS_URL=redis_url) for _ in range(3)]
    for server in servers:  # every cache warm: each key known, the old price loaded
        for _, key in keys.values():
            r = _call(server.base_url, key)
            assert r.status_code == 200, r.text
            assert "x-ratelimit-remaining-requests" in r.headers

    with dep.engine.begin() as conn:
        revoke_key(conn, keys["revoked"][0], actor="test")
        set_org_active(conn, users["deactivated"].organization_id, active=False,
                       reason="propagation test", actor="test")
        suspend(conn, users["suspended"].organization_id, reason="propagation test",
                actor="test")
        set_price(conn, "m", NEW)
    time.sleep(BOUND_S + 0.5)

    for server in servers:
        base = server.base_url
        assert _error(_call(base, keys["revoked"][1])) == (401, "invalid_api_key")
        assert _error(_call(base, keys["deactivated"][1])) == (401, "account_deactivated")
        assert _error(_call(base, keys["suspended"][1])) == (429, "billing_not_active")
        r = _call(base, keys["priced"][1])
        assert r.status_code == 200, r.text
        rows = dep.query("SELECT prompt_tokens, cached_tokens, completion_tokens, cost_nano "
                         "FROM usage_records WHERE request_id = :rid",
                         rid=r.headers["x-request-id"])
        assert len(rows) == 1
        p, c, o, charged = rows[0]
        assert charged == cost(NEW, int(p), int(c), int(o)) != cost(
            OLD, int(p), int(c), int(o))
    if redis == "down":
        assert any("redis" in s.log.read_text().lower() for s in servers)
    assert dep.verify() == []
