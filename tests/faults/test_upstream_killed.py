"""The upstream process dies (SIGKILL) while streams are relayed through two Faregate processes
on PostgreSQL, with no other upstream to fail over to (tests/e2e/test_failover.py has the case
with one).

Every client whose stream was cut receives OpenAI's error event (type server_error, code
upstream_error) and no [DONE]; each such call is charged by the written rule (the prompt plus
the completion tokens received, counted locally), once; a new call while the upstream is gone is
refused in OpenAI's error format and not charged; the money check and the ledger verify."""

from __future__ import annotations

import asyncio
import signal

import httpx2
import pytest

from faregate.catalog.service import ModelPrice
from tests.faults.checks import check_money
from tests.faults.load import Stream, sessions, stream_chat
from tests.harness import Deployment

PRICE = ModelPrice(2_000_000_000, 1_000_000_000, 10_000_000_000)
GRANT_NANO = 1_000_000_000
CLIENTS = 12


@pytest.mark.postgres
def test_upstream_killed_mid_stream(pg_dep: Deployment) -> None:
    dep = pg_dep
    upstream = dep.start_devmodel(token_latency_ms=50.0)
    dep.add_upstream("dev", f"{upstream.base_url}/v1", {"dev": "faregate-dev"}, PRICE)
    user = dep.new_user("upstream-dies@example.com", GRANT_NANO)
    _, key = dep.new_key(user)
    servers = [dep.start_server(FAREGATE_DEV_MODEL="false") for _ in range(2)]

    async def run() -> list[Stream]:
        started: set[int] = set()
        all_started = asyncio.Event()

        def on_chunk(s: Stream) -> None:
            if s.chunks >= 3:
                started.add(id(s))
                if len(started) == CLIENTS:
                    all_started.set()

        clients = sessions(2)

        async def killer() -> None:
            await asyncio.wait_for(all_started.wait(), 60)
            upstream.stop(signal.SIGKILL)

        try:
            kill = asyncio.create_task(killer())
            outcomes = await asyncio.gather(*(
                stream_chat(clients[i % 2], servers[i % 2].base_url, key, "dev",
                            max_tokens=200, prompt=f"a long story {i}", on_chunk=on_chunk)
                for i in range(CLIENTS)))
            await kill
            return outcomes
        finally:
            for c in clients:
                await c.close()

    outcomes = asyncio.run(run())
    assert upstream.proc.poll() is not None
    for o in outcomes:
        assert o.status == 200 and o.text and not o.cut, o
        assert not o.done and o.usage is None, o  # the stream did not end normally
        assert o.error is not None and set(o.error) == {"message", "type", "param", "code"}
        assert o.error["type"] == "server_error" and o.error["code"] == "upstream_error", o

    # With the upstream gone a new call is refused the OpenAI way, and costs nothing.
    refused = httpx2.post(f"{servers[0].base_url}/v1/chat/completions", timeout=30,
                          headers={"Authorization": f"Bearer {key}"},
                          json={"model": "dev", "max_tokens": 5,
                                "messages": [{"role": "user", "content": "anyone?"}]})
    assert refused.status_code in (502, 503), refused.text
    assert set(refused.json()["error"]) == {"message", "type", "param", "code"}

    dep.stop_all_servers()
    money = check_money(dep, user, GRANT_NANO, PRICE)
    refused_id = refused.headers["x-request-id"]
    assert set(money.records) == {o.request_id for o in outcomes} | {refused_id}
    assert set(money.records.values()) == {"upstream_error"}
    rows = {r.request_id: r for r in dep.query(
        "SELECT request_id, prompt_tokens, completion_tokens, usage_source, charged_nano "
        "FROM usage_records")}
    assert rows.pop(refused_id).charged_nano == 0  # logged, not charged
    for r in rows.values():  # charged the prompt and what was received, counted locally
        assert r.usage_source == "local" and r.prompt_tokens >= 1 and r.completion_tokens >= 1
        assert r.charged_nano > 0
