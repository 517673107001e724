"""A Faregate process is killed (SIGKILL) mid-stream, inside the issue's judged scenario: three
processes on one PostgreSQL, 300 concurrent streaming clients on one small balance.

The dead process's lease (the credit it held for its in-flight streams) lapses and is voided by
the sweeper of a *surviving* process, with no restart; the survivors' clients are served
normally throughout; nothing is charged twice; the balance is not negative and went down by
exactly the usage costs; the ledger verifies (tests/faults/checks.py)."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from faregate.catalog.service import ModelPrice
from tests.faults.checks import check_money
from tests.faults.load import Stream, sessions, stream_chat
from tests.harness import Deployment

PRICE = ModelPrice(2_000_000_000, 1_000_000_000, 10_000_000_000)  # $2 / $1 / $10 per 1M
GRANT_NANO = 40_000_000  # $0.04: about 180 reservations, for 300 clients
CLIENTS = 300


@pytest.mark.postgres
def test_kill_one_of_three_servers_mid_stream(pg_dep: Deployment) -> None:
    dep = pg_dep
    upstream = dep.start_devmodel(token_latency_ms=40.0)
    dep.add_upstream("dev", f"{upstream.base_url}/v1", {"dev": "faregate-dev"}, PRICE)
    user = dep.new_user("killed@example.com", GRANT_NANO)
    keys = [dep.new_key(user)[1] for _ in range(3)]
    servers = [dep.start_server(FAREGATE_LEASE_TTL_S="5", FAREGATE_DEV_MODEL="false")
               for _ in range(3)]
    victim, survivors = servers[2], servers[:2]
    killed_pid = victim.proc.pid

    async def run() -> tuple[list[Stream], dict[int, int]]:
        on_victim: set[int] = set()
        on_survivors: set[int] = set()
        ready = asyncio.Event()

        def on_chunk(s: Stream) -> None:
            if s.base == victim.base_url:
                on_victim.add(id(s))
            else:
                on_survivors.add(id(s))
            if len(on_victim) >= 3 and len(on_survivors) >= 3:
                ready.set()  # streams in flight on the victim and on the survivors

        clients = sessions(4)

        async def one(i: int) -> Stream:
            return await stream_chat(clients[i % 4], servers[i % 3].base_url, keys[i % 3],
                                     "dev", prompt=f"tell me {i}", on_chunk=on_chunk)

        async def killer() -> dict[int, int]:
            await asyncio.wait_for(ready.wait(), 60)
            victim.proc.send_signal(signal.SIGKILL)  # no shutdown: its lease stays open
            victim.proc.wait()
            rows = await asyncio.to_thread(
                dep.query, "SELECT id, amount_nano FROM leases "
                "WHERE status = 'open' AND owner LIKE :o", o=f"%:{killed_pid}:%")
            return {int(r.id): int(r.amount_nano) for r in rows}

        try:
            # One call on each process first: each holds a lease when the burst comes (for 2 s
            # after going idle). From cold, the first process to lease could take the whole
            # small balance before the others asked, refusing all of their clients: nothing
            # in flight on the victim to kill, or nothing served by the survivors.
            warm = await asyncio.gather(*(stream_chat(
                clients[0], s.base_url, keys[n], "dev", prompt="warm up")
                for n, s in enumerate(servers)))
            assert all(w.done for w in warm), warm
            kill = asyncio.create_task(killer())
            outcomes = await asyncio.gather(*(one(i) for i in range(CLIENTS)))
            if not ready.is_set():
                kill.cancel()
                raise AssertionError(sorted(
                    (o.base[-5:], o.status, o.done, o.chunks) for o in outcomes)[::7])
            return outcomes, await kill
        finally:
            for c in clients:
                await c.close()

    outcomes, open_at_kill = asyncio.run(run())
    dep.procs.remove(victim)
    assert sum(open_at_kill.values()) > 0, "the killed process held nothing: proves nothing"

    cut = [o for o in outcomes if o.cut]
    assert cut and all(o.base == victim.base_url for o in cut)
    assert any(o.chunks for o in cut), "no stream was cut mid-way"
    for o in outcomes:
        if o.base != victim.base_url:  # the survivors' clients never notice
            assert o.status in (200, 429), o
            if o.status == 200:
                assert o.done and o.usage is not None and o.error is None, o
            else:
                assert o.error is not None and o.error["code"] == "insufficient_quota", o
    served = [o for o in outcomes if o.done]
    assert served and any(o.status == 429 for o in outcomes), "the balance never ran out"

    # A survivor's sweeper voids the dead process's leases once their TTL has passed. Leases the
    # victim closed itself before it died (drained, or handed back to a peer) stay closed.
    deadline = time.monotonic() + 60
    while dep.query("SELECT id FROM leases WHERE status = 'open' AND owner LIKE :o",
                    o=f"%:{killed_pid}:%") and time.monotonic() < deadline:
        time.sleep(0.5)
    dead = {int(r.id): r.status for r in dep.query(
        "SELECT id, status FROM leases WHERE owner LIKE :o", o=f"%:{killed_pid}:%")}
    assert {dead[i] for i in open_at_kill} == {"voided"}, dead
    assert "open" not in dead.values(), dead
    assert any("voided" in s.log.read_text() for s in survivors)
    assert all(s.proc.poll() is None for s in survivors)

    dep.stop_all_servers()
    money = check_money(dep, user, GRANT_NANO, PRICE,
                        answered={o.request_id for o in served})
    # Every usage a client received is the one recorded; a cut stream is charged at most once.
    for o in served:
        assert o.usage is not None and money.records[o.request_id] == "ok"
