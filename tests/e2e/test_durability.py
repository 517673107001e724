"""Durability: a long stream outlives its lease's TTL (heartbeats), and a crash (SIGKILL) loses
nothing that was acknowledged; the lapsed lease of the dead process is swept."""

from __future__ import annotations

import asyncio
import signal
import time

import aiohttp
import orjson

from faregate.catalog.service import ModelPrice
from tests.harness import Deployment

PRICE = ModelPrice(1_000_000_000, 500_000_000, 3_000_000_000)


def test_long_stream_outlives_the_lease_ttl(sqlite_dep: Deployment) -> None:
    dep = sqlite_dep
    upstream = dep.start_devmodel(token_latency_ms=100.0)
    # 7 s before the first byte, then a token every 100 ms: longer than the lease's 5 s TTL.
    dep.add_upstream("slow", f"{upstream.base_url}/v1",
                     {"slow": "faregate-dev:slow_first_byte_ms=7000"}, PRICE)
    user = dep.new_user("long@example.com", 1_000_000_000)
    _, key = dep.new_key(user)
    server = dep.start_server(FAREGATE_LEASE_TTL_S="5", FAREGATE_DEV_MODEL="false")

    async def stream() -> tuple[str, dict[str, int]]:
        async with aiohttp.ClientSession() as session, session.post(
                f"{server.base_url}/v1/chat/completions",
                json={"model": "slow", "stream": True, "max_tokens": 20,
                      "stream_options": {"include_usage": True},
                      "messages": [{"role": "user", "content": "take your time"}]},
                headers={"Authorization": f"Bearer {key}"}) as resp:
            assert resp.status == 200
            usage: dict[str, int] = {}
            async for line in resp.content:
                if line.startswith(b"data: {") and b'"usage":{' in line:
                    usage = orjson.loads(line[6:])["usage"]
            return resp.headers["x-request-id"], usage

    rid, usage = asyncio.run(stream())
    dep.stop_all_servers()
    [record] = dep.query("SELECT status, cost_nano, charged_nano, writeoff_nano "
                         "FROM usage_records WHERE request_id = :rid", rid=rid)
    assert record.status == "ok" and usage["completion_tokens"] >= 1
    assert record.writeoff_nano == 0 and record.charged_nano == record.cost_nano > 0
    assert dep.query("SELECT status FROM leases")[0].status == "closed"  # never voided
    assert dep.verify() == []


async def _hammer(base: str, key: str, seconds: float) -> list[tuple[str, int]]:
    """Non-streamed requests until the server dies; returns (request id, cost) acknowledged."""
    acked: list[tuple[str, int]] = []
    deadline = time.monotonic() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < deadline:
            try:
                async with session.post(
                        f"{base}/v1/chat/completions",
                        json={"model": "dev", "max_tokens": 8,
                              "messages": [{"role": "user", "content": "hi"}]},
                        headers={"Authorization": f"Bearer {key}"}) as resp:
                    body = await resp.read()
                    if resp.status == 200 and orjson.loads(body)["usage"]:
                        acked.append((resp.headers["x-request-id"],
                                      int(resp.headers["x-faregate-cost-nano-usd"])))
            except (aiohttp.ClientError, TimeoutError):
                return

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        await asyncio.gather(*(client(session) for _ in range(16)))
    return acked


def test_crash_loses_nothing_acknowledged(any_dep: Deployment) -> None:
    dep = any_dep
    upstream = dep.start_devmodel(token_latency_ms=2.0)
    dep.add_upstream("dev", f"{upstream.base_url}/v1", {"dev": "faregate-dev"}, PRICE)
    user = dep.new_user("crash@example.com", 5_000_000_000)
    _, key = dep.new_key(user)
    server = dep.start_server(FAREGATE_LEASE_TTL_S="5", FAREGATE_DEV_MODEL="false")

    async def run() -> list[tuple[str, int]]:
        load = asyncio.create_task(_hammer(server.base_url, key, 20.0))
        await asyncio.sleep(1.5)
        server.proc.send_signal(signal.SIGKILL)  # no shutdown, no lease returned
        return await load

    acked = asyncio.run(run())
    server.proc.wait()
    dep.procs.remove(server)
    assert len(acked) > 20
    records = {r.request_id: int(r.cost_nano) for r in dep.query(
        "SELECT request_id, cost_nano FROM usage_records")}
    for rid, cost in acked:
        assert records.get(rid) == cost, f"acknowledged request {rid} was lost"
    assert dep.balance(user)[1] > 0  # the dead process's lease still holds credit

    # A new process's sweeper returns the lapsed lease once its TTL has passed.
    dep.start_server(FAREGATE_LEASE_TTL_S="5", FAREGATE_DEV_MODEL="false")
    deadline = time.monotonic() + 30
    while dep.balance(user)[1] and time.monotonic() < deadline:
        time.sleep(0.5)
    dep.stop_all_servers()
    balance_nano, held, leased = dep.balance(user)
    assert held == 0 and leased == 0
    assert 5_000_000_000 - balance_nano == sum(records.values())
    assert dep.verify() == []
