"""A key's kind, scopes, expiry and spend limit are enforced on /v1. The spend limit is exact
under 50 concurrent requests, through two server processes sharing one database."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import aiohttp
import orjson
import pytest

from faregate.api_keys.service import KeySpec
from tests.harness import Deployment

ONE_DOLLAR = 1_000_000_000


def _post(base: str, key: str, path: str, body: dict[str, object]) -> tuple[int, dict[str, object],
                                                                            dict[str, str]]:
    async def go() -> tuple[int, dict[str, object], dict[str, str]]:
        async with aiohttp.ClientSession() as s, s.post(
                f"{base}{path}", data=orjson.dumps(body),
                headers={"Authorization": f"Bearer {key}",
                         "Content-Type": "application/json"}) as r:
            return r.status, await r.json(), dict(r.headers)
    return asyncio.run(go())


def _get(base: str, key: str, path: str) -> tuple[int, dict[str, object]]:
    async def go() -> tuple[int, dict[str, object]]:
        async with aiohttp.ClientSession() as s, s.get(
                f"{base}{path}", headers={"Authorization": f"Bearer {key}"}) as r:
            return r.status, await r.json()
    return asyncio.run(go())


CHAT = {"model": "faregate-dev", "max_tokens": 8,
        "messages": [{"role": "user", "content": "hello"}]}
EMBED = {"model": "faregate-dev-embed", "input": "hello"}


def test_scopes_and_kinds(sqlite_dep: Deployment) -> None:
    server = sqlite_dep.start_server()
    user = sqlite_dep.new_user("scopes@example.com", ONE_DOLLAR)
    base = server.base_url
    _, embed_only = sqlite_dep.new_key(user, KeySpec(name="e", permissions="restricted",
                                                     scopes=("embeddings.write",)))
    status, body, _ = _post(base, embed_only, "/v1/chat/completions", CHAT)
    assert status == 401 and "Missing scopes: chat.write" in str(body["error"])
    assert _post(base, embed_only, "/v1/embeddings", EMBED)[0] == 200
    assert _get(base, embed_only, "/v1/models")[0] == 401

    _, read_only = sqlite_dep.new_key(user, KeySpec(name="r", permissions="read_only"))
    assert _get(base, read_only, "/v1/models")[0] == 200
    assert _post(base, read_only, "/v1/chat/completions", CHAT)[0] == 401
    assert _post(base, read_only, "/v1/embeddings", EMBED)[0] == 401

    _, admin = sqlite_dep.new_key(user, KeySpec(name="a", kind="admin"))
    assert admin.startswith("sk-fg-admin-")
    status, body, _ = _post(base, admin, "/v1/chat/completions", CHAT)
    assert status == 401 and "Admin keys" in str(body["error"])

    _, full = sqlite_dep.new_key(user, KeySpec(name="f"))
    assert _post(base, full, "/v1/chat/completions", CHAT)[0] == 200


def test_expired_key_is_refused_within_the_cache_bound(sqlite_dep: Deployment) -> None:
    server = sqlite_dep.start_server()
    user = sqlite_dep.new_user("expiry@example.com", ONE_DOLLAR)
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)
    key_id, key = sqlite_dep.new_key(user, KeySpec(name="short", expires_at=soon))
    assert _post(server.base_url, key, "/v1/chat/completions", CHAT)[0] == 200
    time.sleep(max(0.0, (soon - dt.datetime.now(dt.UTC)).total_seconds()) + 0.1)
    status, body, _ = _post(server.base_url, key, "/v1/chat/completions", CHAT)
    assert status == 401
    assert body["error"]["code"] == "api_key_expired"  # type: ignore[index]
    assert "expired" in body["error"]["message"]  # type: ignore[index]
    # last_used_at was recorded (flushed every few seconds, and at shutdown)
    sqlite_dep.stop_all_servers()
    row = sqlite_dep.query("SELECT last_used_at FROM api_keys WHERE id = :k", k=key_id)
    assert row[0][0] is not None


@pytest.mark.parametrize("processes", [1, 2])
def test_spend_limit_is_exact_under_concurrency(any_dep: Deployment, processes: int) -> None:
    servers = [any_dep.start_server() for _ in range(processes)]
    user = any_dep.new_user(f"limit{processes}@example.com", 10 * ONE_DOLLAR)
    limit = 3_000_000  # $0.003: a few requests' worth; the balance is far larger
    key_id, key = any_dep.new_key(user, KeySpec(name="capped", spend_limit_nano=limit,
                                                spend_limit_period="day"))
    body = {"model": "faregate-dev", "max_tokens": 200, "stream": True,
            "messages": [{"role": "user", "content": "tell me a long story " * 20}]}

    async def one(session: aiohttp.ClientSession, i: int) -> tuple[int, dict[str, object]]:
        base = servers[i % len(servers)].base_url
        async with session.post(f"{base}/v1/chat/completions", data=orjson.dumps(body),
                                headers={"Authorization": f"Bearer {key}",
                                         "Content-Type": "application/json"}) as r:
            if r.status != 200:
                return r.status, {**(await r.json()), "retry": r.headers.get("x-should-retry")}
            await r.read()
            return 200, {}

    async def main() -> list[tuple[int, dict[str, object]]]:
        async with aiohttp.ClientSession() as s:
            return await asyncio.gather(*(one(s, i) for i in range(50)))

    results = asyncio.run(main())
    refused = [b for st, b in results if st == 429]
    assert len(refused) + sum(1 for st, _ in results if st == 200) == 50
    assert refused, "the limit never bit: make it smaller"
    for b in refused:
        assert b["error"]["type"] == "insufficient_quota"  # type: ignore[index]
        assert b["error"]["code"] == "api_key_spend_limit_exceeded"  # type: ignore[index]
        assert "daily spend limit of $0.003" in b["error"]["message"]  # type: ignore[index]
        assert b["retry"] == "false"
    any_dep.stop_all_servers()
    charged = any_dep.query("SELECT COALESCE(SUM(charged_nano), 0), COUNT(*) FROM usage_records "
                            "WHERE api_key_id = :k", k=key_id)[0]
    assert 0 < int(charged[0]) <= limit
    assert int(charged[1]) == sum(1 for st, _ in results if st == 200)
    balance, held, leases = any_dep.balance(user)
    assert balance == 10 * ONE_DOLLAR - int(charged[0]) and held == 0 and leases == 0
    assert any_dep.verify() == []
