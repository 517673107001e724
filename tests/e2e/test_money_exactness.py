"""No overspend: hundreds of concurrent streaming requests from several clients against a
small grant, through one or several server processes, with an upstream that overshoots
max_tokens, one that dies mid-stream, one that reports no usage, and clients that disconnect.

Afterwards: balance >= 0; its decrease equals, to the nano-dollar, the sum of what was charged
for the requests the clients made; each usage a client received is priced exactly; nothing is
held once the servers have shut down cleanly; `ledger verify` finds nothing."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest

from faregate.catalog.service import ModelPrice
from faregate.pricing.cost import Price, cost
from tests.e2e.sse_client import chat_stream_request, sse_data
from tests.harness import Deployment

PRICE = ModelPrice(2_000_000_000, 1_000_000_000, 10_000_000_000)  # $2 / $1 / $10 per 1M
GRANT_NANO = 40_000_000  # $0.04: runs out part-way through the load
MODELS = {"m-ok": "faregate-dev", "m-over": "faregate-dev:overshoot=25",
          "m-die": "faregate-dev:die_after=3", "m-nousage": "faregate-dev:no_usage"}


@dataclass
class Outcome:
    status: int
    request_id: str
    model: str
    usage: dict[str, Any] | None = None
    done: bool = False
    error_event: bool = False
    aborted: bool = False
    error_code: str | None = None


async def one_request(session: aiohttp.ClientSession, base: str, key: str, model: str,
                      rng: random.Random) -> Outcome:
    abort_after = rng.choice([None, None, None, 2])  # a quarter of clients walk away
    body, headers = chat_stream_request(key, model, f"tell me {rng.randrange(10**6)}")
    async with session.post(f"{base}/v1/chat/completions", data=body,
                            headers=headers) as resp:
        out = Outcome(resp.status, resp.headers.get("x-request-id", ""), model)
        if resp.status != 200:
            payload = await resp.json()
            out.error_code = payload["error"]["code"]
            return out
        chunks = 0
        try:
            async for data in sse_data(resp.content.iter_any()):
                if data == b"[DONE]":
                    out.done = True
                    continue
                obj = orjson.loads(data)
                if "error" in obj:
                    out.error_event = True
                elif obj.get("usage"):
                    out.usage = obj["usage"]
                chunks += 1
                if abort_after is not None and chunks >= abort_after:
                    out.aborted = True
                    resp.close()
                    return out
        except aiohttp.ClientError:
            out.error_event = True
    return out


async def run_load(bases: list[str], keys: list[str], total: int, concurrency: int,
                   seed: int) -> list[Outcome]:
    rng = random.Random(seed)
    plan = [(bases[i % len(bases)], keys[i % len(keys)], rng.choice(list(MODELS)))
            for i in range(total)]
    sem = asyncio.Semaphore(concurrency)
    # Several independent clients, each with its own connection pool.
    sessions = [aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
                for _ in range(4)]

    async def go(i: int) -> Outcome:
        base, key, model = plan[i]
        async with sem:
            return await one_request(sessions[i % len(sessions)], base, key, model,
                                     random.Random(seed * 1000 + i))
    try:
        return await asyncio.gather(*(go(i) for i in range(total)))
    finally:
        for s in sessions:
            await s.close()


def check_exact(dep: Deployment, outcomes: list[Outcome], user: Any) -> None:
    balance_nano, held_nano, leased_nano = dep.balance(user)
    assert balance_nano >= 0
    assert held_nano == 0 and leased_nano == 0, "a clean shutdown returns every lease"
    assert dep.verify() == []

    served = [o for o in outcomes if o.status == 200]
    refused = [o for o in outcomes if o.status != 200]
    assert served, "no request was served"
    assert refused, "the grant was never exhausted: the test proves nothing"
    assert {o.status for o in refused} == {429}
    assert {o.error_code for o in refused} == {"insufficient_quota"}
    assert all(o.request_id.startswith("req_") for o in outcomes)

    records = {r.request_id: r for r in dep.query(
        "SELECT request_id, cost_nano, charged_nano, writeoff_nano, status, prompt_tokens, "
        "cached_tokens, completion_tokens FROM usage_records")}
    served_ids = {o.request_id for o in served}
    assert set(records) == served_ids, "one usage record per served request, no other"
    charged_total = sum(int(r.charged_nano) for r in records.values())
    assert GRANT_NANO - balance_nano == charged_total

    price = Price(PRICE.input_nano_per_1m, PRICE.cached_input_nano_per_1m,
                  PRICE.output_nano_per_1m)
    for o in served:
        record = records[o.request_id]
        if o.usage is not None:
            cached = (o.usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
            assert int(record.cost_nano) == cost(price, o.usage["prompt_tokens"], cached,
                                                 o.usage["completion_tokens"])
        if o.aborted:
            # The server may have relayed everything (or seen the upstream die) before it
            # noticed the client leave; then it charges what it received, like any other end.
            allowed = {"client_disconnected", "upstream_error" if o.model == "m-die" else "ok"}
            assert record.status in allowed
            if record.status == "client_disconnected":
                assert int(record.completion_tokens) >= 1  # the received part is charged
        elif o.model == "m-die":
            assert o.error_event and not o.done
            assert record.status == "upstream_error"
        else:
            assert o.done and o.usage is not None, o
            assert record.status == "ok"
    statuses = {str(r.status) for r in records.values()}
    assert {"ok", "client_disconnected", "upstream_error"} <= statuses


def _setup(dep: Deployment, keys: int) -> tuple[Any, list[str], list[str]]:
    upstream = dep.start_devmodel(token_latency_ms=1.0)
    dep.add_upstream("dev", f"{upstream.base_url}/v1", MODELS, PRICE)
    user = dep.new_user("load@example.com", GRANT_NANO)
    return user, [dep.new_key(user)[1] for _ in range(keys)], []


@pytest.mark.parametrize("servers", [1, 2])
def test_no_overspend_sqlite(sqlite_dep: Deployment, servers: int) -> None:
    """On SQLite, one process, and two processes sharing the file (as --workers 2 would)."""
    user, keys, _ = _setup(sqlite_dep, 3)
    bases = [sqlite_dep.start_server(FAREGATE_DEV_MODEL="false").base_url
             for _ in range(servers)]
    outcomes = asyncio.run(run_load(bases, keys, total=300, concurrency=64, seed=servers))
    sqlite_dep.stop_all_servers()
    check_exact(sqlite_dep, outcomes, user)


@pytest.mark.postgres
def test_no_overspend_postgres_three_servers(pg_dep: Deployment) -> None:
    user, keys, _ = _setup(pg_dep, 3)
    bases = [pg_dep.start_server(FAREGATE_DEV_MODEL="false").base_url for _ in range(3)]
    outcomes = asyncio.run(run_load(bases, keys, total=400, concurrency=96, seed=7))
    pg_dep.stop_all_servers()
    check_exact(pg_dep, outcomes, user)
