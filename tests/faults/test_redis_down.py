"""Redis goes away under load and comes back, with two Faregate processes on PostgreSQL sharing
their rate limits through it.

While Redis is down no request fails because of it (money never depends on Redis), the rate
limits fall back to each process's memory (each process then allows the whole limit, and says
so in its log), and once Redis is back it is used again (the limit is shared once more, its
keys are written). Afterwards the money check and the ledger verify."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx2
import pytest

from faregate.catalog.service import ModelPrice
from faregate.identity.users import User
from tests.faults.checks import check_money
from tests.faults.conftest import PrivateRedis
from tests.faults.load import Stream, sessions, stream_chat
from tests.harness import Deployment, Proc

PRICE = ModelPrice(1_000_000_000, 500_000_000, 3_000_000_000)
GRANT_NANO = 1_000_000_000
RPM = 5  # the limited organizations' tier


def _tier(dep: Deployment, user: User, tier: int, rpm: int) -> None:
    with dep.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE usage_tiers SET rpm = %(rpm)s, tpm = 1000000000, key_rpm = NULL, "
            "key_tpm = NULL WHERE tier = %(tier)s", {"rpm": rpm, "tier": tier})
        conn.exec_driver_sql(
            "UPDATE organizations SET tier = %(tier)s, tier_override = %(tier)s "
            "WHERE id = %(org)s", {"tier": tier, "org": user.organization_id})


def _chat(base: str, key: str) -> httpx2.Response:
    return httpx2.post(f"{base}/v1/chat/completions", timeout=30,
                       headers={"Authorization": f"Bearer {key}"},
                       json={"model": "dev", "max_tokens": 4,
                             "messages": [{"role": "user", "content": "hi"}]})


def _allowed(servers: list[Proc], key: str, calls: int) -> int:
    """Calls alternating between the servers; how many were let through."""
    codes = [_chat(servers[i % 2].base_url, key).status_code for i in range(calls)]
    assert set(codes) <= {200, 429}, codes
    return codes.count(200)


@pytest.mark.postgres
@pytest.mark.redis
def test_redis_down_and_back(pg_dep: Deployment, private_redis: PrivateRedis) -> None:
    dep = pg_dep
    upstream = dep.start_devmodel(token_latency_ms=2.0)
    dep.add_upstream("dev", f"{upstream.base_url}/v1", {"dev": "faregate-dev"}, PRICE)
    loaded = dep.new_user("load@example.com", GRANT_NANO)
    _, load_key = dep.new_key(loaded)
    _tier(dep, loaded, 2, 1_000_000)  # limited (so every call goes through Redis), not hit
    limited = [dep.new_user(f"rpm{i}@example.com", GRANT_NANO) for i in range(3)]
    for user in limited:
        _tier(dep, user, 1, RPM)
    limited_keys = [dep.new_key(user)[1] for user in limited]
    servers = [dep.start_server(FAREGATE_REDIS_URL=private_redis.url,
                                FAREGATE_DEV_MODEL="false") for _ in range(2)]

    # Redis up: the two processes share one limit.
    assert _allowed(servers, limited_keys[0], 2 * RPM) == RPM
    assert private_redis.keys("fg:rl:*") > 0

    results: list[Any] = []  # (status, request id) of plain calls, Streams
    stop = threading.Event()

    def plain() -> None:
        i = 0
        while not stop.is_set():
            r = _chat(servers[i % 2].base_url, load_key)
            results.append((r.status_code, r.headers.get("x-request-id", ""), r.text[:300]))
            i += 1

    def streaming() -> None:
        async def loop() -> None:
            [client] = sessions(1, timeout_s=30)
            i = 0
            try:
                while not stop.is_set():
                    results.append(await stream_chat(client, servers[i % 2].base_url,
                                                     load_key, "dev", max_tokens=10))
                    i += 1
            finally:
                await client.close()
        asyncio.run(loop())

    threads = [threading.Thread(target=plain) for _ in range(2)]
    threads += [threading.Thread(target=streaming) for _ in range(2)]
    for th in threads:
        th.start()
    try:
        time.sleep(1.0)
        private_redis.kill()
        time.sleep(0.5)
        # Redis down: each process limits on its own, so together they allow twice the limit.
        assert _allowed(servers, limited_keys[1], 2 * RPM + 2) == 2 * RPM
        time.sleep(0.5)
        private_redis.start()  # empty, on the same port
        time.sleep(6.0)  # the processes try Redis again 5 s after it failed
        # Redis back: shared again, and written to.
        assert _allowed(servers, limited_keys[2], 2 * RPM) == RPM
        assert private_redis.keys("fg:rl:*") > 0
    finally:
        stop.set()
        for th in threads:
            th.join(60)

    plain_calls = [r for r in results if isinstance(r, tuple)]
    streams = [r for r in results if isinstance(r, Stream)]
    assert len(plain_calls) > 20 and len(streams) > 20
    assert all(status == 200 for status, _, _ in plain_calls), [
        c for c in plain_calls if c[0] != 200][:3]
    assert all(s.status == 200 and s.done and s.usage is not None and s.error is None
               for s in streams), [s for s in streams if not s.done][:3]
    for server in servers:
        assert "Redis unreachable for rate limits" in server.log.read_text()

    dep.stop_all_servers()
    answered = {rid for _, rid, _ in plain_calls} | {s.request_id for s in streams}
    check_money(dep, loaded, GRANT_NANO, PRICE, answered=answered)
    for user in limited:
        check_money(dep, user, GRANT_NANO, PRICE)
