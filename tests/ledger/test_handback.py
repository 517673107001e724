"""Credit a peer process holds is handed back when another process comes up short (PostgreSQL,
LISTEN/NOTIFY): two credit managers on one account stand for two processes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
from sqlalchemy.engine import Engine

from faregate.db.runner import Database
from faregate.ledger.accounts import balance, org_account_id
from faregate.ledger.leasing import ASK_INTERVAL_S, CreditManager, Reservation
from faregate.ledger.limits import ensure_limit_account
from faregate.ledger.settlement import UsageFacts
from faregate.ledger.verify import verify
from tests.factories import funded_user

pytestmark = pytest.mark.postgres

FUNDS = 100_000
EVENTS = ("asked", "returned", "received")


def _usage(org: str, n: int, key_id: str | None = None) -> UsageFacts:
    return UsageFacts(request_id=f"req_hb_{org}_{n}", organization_id=org, api_key_id=key_id,
                      endpoint="chat", model="m", upstream="u", prompt_tokens=3,
                      cached_tokens=0, completion_tokens=n, usage_source="upstream",
                      status="ok", streamed=False, latency_ms=1)


def _counts() -> dict[str, float]:
    return {e: REGISTRY.get_sample_value("faregate_lease_handback_total", {"event": e}) or 0.0
            for e in EVENTS}


def _since(before: dict[str, float]) -> dict[str, float]:
    now = _counts()
    return {e: now[e] - before[e] for e in EVENTS}


async def _listening(*managers: CreditManager) -> None:
    async with asyncio.timeout(10):
        while not all(m.answers_peers for m in managers):
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def _two_processes(engine: Engine, *, listening: bool = True
                         ) -> AsyncIterator[tuple[CreditManager, CreditManager]]:
    """Two credit managers on one database, as two processes; closed (leases returned) after."""
    a, b = (CreditManager(Database(engine), ttl_s=30, max_lease_nano=10**9) for _ in range(2))
    if listening:
        a.start()
        b.start()
        await _listening(a, b)
    try:
        yield a, b
    finally:
        for m in (a, b):
            await m.close()
            m._db.close()


def _account(engine: Engine) -> tuple[str, int]:
    with engine.begin() as conn:
        user = funded_user(conn, FUNDS)
        return user.organization_id, org_account_id(conn, user.organization_id)


def _settled_exactly(engine: Engine, acct: int, spent: int) -> None:
    with engine.begin() as conn:
        b = balance(conn, acct)
        assert (b.balance_nano, b.held_nano) == (FUNDS - spent, 0)
        assert conn.execute(sa.text("SELECT count(*) FROM leases WHERE status = 'open'")
                            ).scalar() == 0
        assert verify(conn) == []


@pytest.mark.parametrize("listening", [True, False])
def test_a_peer_hands_back_what_it_holds_spare(pg_engine: Engine, listening: bool) -> None:
    org, acct = _account(pg_engine)
    before = _counts()

    async def main() -> None:
        async with _two_processes(pg_engine, listening=listening) as (a, b):
            # Process A serves a request: its lease keeps 50,000 of the balance after it.
            res = await a.reserve(acct, 60_000, 60_000)
            assert res is not None
            await a.settle(res, 10_000, _usage(org, 1))
            # Process B needs 70,000: only 40,000 is not leased. Without hand-back it is
            # refused although the balance holds 90,000.
            got = await b.reserve(acct, 70_000, 70_000)
            if not listening:
                assert got is None
                return
            assert got is not None and got.amount_nano == 70_000
            await b.settle(got, 65_000, _usage(org, 2))
            # A goes on: it leases afresh from what is left (20,000 after B's charge).
            again = await a.reserve(acct, 20_000, 20_000)
            assert again is not None
            await a.settle(again, 20_000, _usage(org, 3))

    asyncio.run(main())
    assert _since(before) == ({"asked": 1, "returned": 1, "received": 1} if listening
                              else {"asked": 0, "returned": 0, "received": 0})
    _settled_exactly(pg_engine, acct, 95_000 if listening else 10_000)


def test_asking_only_when_peers_hold_enough_and_answering_only_with_what_is_spare(
        pg_engine: Engine) -> None:
    org, acct = _account(pg_engine)
    before = _counts()

    async def main() -> None:
        async with _two_processes(pg_engine) as (a, b):
            # More than the balance: refused, and nobody asked (no peer holds anything). B's
            # lease took what there was, so B now holds the whole balance, spare.
            assert await b.reserve(acct, FUNDS + 1, FUNDS + 1) is None
            assert _since(before)["asked"] == 0
            # A needs all of it: A asks, B hands its lease back, A leases it.
            busy = await a.reserve(acct, FUNDS, FUNDS)
            assert busy is not None and busy.amount_nano == FUNDS
            assert _since(before) == {"asked": 1, "returned": 1, "received": 1}
            # B asked about this account a moment ago (its first refusal): not again so soon.
            assert await b.reserve(acct, 1_000, 1_000) is None
            assert _since(before)["asked"] == 1
            # A second later B asks, but A's lease is all reserved by the request in flight:
            # nothing spare to give. A says so, and B is refused.
            await asyncio.sleep(ASK_INTERVAL_S)
            assert await b.reserve(acct, 1_000, 1_000) is None
            await a.settle(busy, 30_000, _usage(org, 1))

    asyncio.run(main())
    assert _since(before) == {"asked": 2, "returned": 1, "received": 1}
    _settled_exactly(pg_engine, acct, 30_000)


def test_the_listener_comes_back_after_its_backend_is_killed(pg_engine: Engine) -> None:
    org, acct = _account(pg_engine)

    async def main() -> None:
        async with _two_processes(pg_engine) as (a, b):
            with pg_engine.begin() as conn:
                assert conn.execute(sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                    "application_name = 'faregate-listen' AND datname = current_database()")
                ).scalar() == 2
            async with asyncio.timeout(10):
                while a.answers_peers or b.answers_peers:  # both noticed
                    await asyncio.sleep(0.01)
            await _listening(a, b)  # and listen again
            res = await a.reserve(acct, 60_000, 60_000)
            assert res is not None
            await a.settle(res, 10_000, _usage(org, 1))
            got = await b.reserve(acct, 70_000, 70_000)
            assert got is not None
            await b.settle(got, 1_000, _usage(org, 2))

    asyncio.run(main())
    _settled_exactly(pg_engine, acct, 11_000)


def test_a_spend_limit_leased_by_a_peer_is_handed_back_too(pg_engine: Engine) -> None:
    """A key's spend limit is an account of its own with its own leases: a call reserves from
    the balance and the limit together, and either may be held by a peer."""
    org, acct = _account(pg_engine)
    with pg_engine.begin() as conn:
        lim = ensure_limit_account(conn, code="key:key_hb:day:x", organization_id=org,
                                   limit_nano=50_000)
    before = _counts()

    async def main() -> None:
        async with _two_processes(pg_engine) as (a, b):
            res = await a.reserve_joint((acct, lim), 10_000, 10_000)
            assert isinstance(res, Reservation)  # A leased half of the limit (25,000)
            await a.settle(res, 5_000, _usage(org, 1, "key_hb"))
            # B needs 40,000 of the limit; 25,000 is not leased.
            got = await b.reserve_joint((acct, lim), 40_000, 40_000)
            assert isinstance(got, Reservation) and got.amount_nano == 40_000
            await b.settle(got, 40_000, _usage(org, 2, "key_hb"))

    asyncio.run(main())
    assert _since(before)["received"] >= 1
    _settled_exactly(pg_engine, acct, 45_000)
    with pg_engine.begin() as conn:
        assert balance(conn, lim).balance_nano == 50_000 - 45_000
