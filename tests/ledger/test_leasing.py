"""Credit leasing: exact under concurrency, leases expire and are swept, a settle that finds
its lease voided posts what the balance still covers and writes off the rest."""

from __future__ import annotations

import asyncio
import random

from sqlalchemy.engine import Engine

from faregate.db.runner import Database
from faregate.identity.users import User
from faregate.ledger.accounts import balance, open_leases_total, org_account_id
from faregate.ledger.leases import void_lapsed
from faregate.ledger.leasing import CreditManager
from faregate.ledger.settlement import UsageFacts
from faregate.ledger.transfers import grant
from faregate.ledger.verify import verify
from tests.factories import funded_user


def _funded(engine: Engine, amount: int) -> tuple[User, int]:
    with engine.begin() as conn:
        user = funded_user(conn, amount)
        return user, org_account_id(conn, user.organization_id)


def _facts(user: User, n: int) -> UsageFacts:
    return UsageFacts(request_id=f"req_{user.id}_{n}", organization_id=user.organization_id,
                      api_key_id=None, endpoint="chat", model="m", upstream="u",
                      prompt_tokens=1, cached_tokens=0, completion_tokens=1,
                      usage_source="upstream", status="ok", streamed=False, latency_ms=1)


async def _spend(manager: CreditManager, user: User, acct: int, n: int, want: int,
                 actual: int) -> bool:
    res = await manager.reserve(acct, want, want)
    if res is None:
        return False
    await asyncio.sleep(random.random() / 1000)
    await manager.settle(res, actual, _facts(user, n))
    return True


def test_concurrent_reservations_never_exceed_the_balance(engine: Engine) -> None:
    user, acct = _funded(engine, 1_000_000)  # exactly 100 requests of 10,000

    async def main() -> list[bool]:
        db = Database(engine)
        managers = [CreditManager(db, ttl_s=30, max_lease_nano=10**9) for _ in range(3)]
        try:
            return await asyncio.gather(*(
                _spend(managers[i % 3], user, acct, i, 10_000, 10_000) for i in range(400)))
        finally:
            for m in managers:
                await m.close()

    served = asyncio.run(main())
    with engine.begin() as conn:
        b = balance(conn, acct)
        assert b.balance_nano == 1_000_000 - 10_000 * sum(served) >= 0
        assert b.held_nano == 0 and open_leases_total(conn, acct) == 0
        assert verify(conn) == []
    # Three processes compete for one small balance: some refusals are false (money leased by
    # a peer), but never more than that: most of the balance is spent.
    assert 50 <= sum(served) <= 100


def test_lapsed_lease_is_swept_and_late_settle_is_capped(engine: Engine) -> None:
    user, acct = _funded(engine, 50_000)

    async def main() -> None:
        db = Database(engine)
        manager = CreditManager(db, ttl_s=5, max_lease_nano=10**9)
        res = await manager.reserve(acct, 40_000, 40_000)
        assert res is not None
        with engine.begin() as conn:  # the process "stalls": its lease lapses and is swept
            conn.exec_driver_sql("UPDATE leases SET expires_at_ms = 0")
            assert void_lapsed(conn) == 1
            assert balance(conn, acct).held_nano == 0
        # Meanwhile the balance is spent elsewhere down to 30,000.
        other = CreditManager(db, ttl_s=5, max_lease_nano=10**9)
        spent = await other.reserve(acct, 20_000, 20_000)
        assert spent is not None
        await other.settle(spent, 20_000, _facts(user, 1))
        await other.close()
        # The late settle still posts, capped at what is available; the rest is written off.
        item = await manager.settle(res, 45_000, _facts(user, 2))
        assert (item.charged_nano, item.writeoff_nano) == (30_000, 15_000)
        await manager.close()

    asyncio.run(main())
    with engine.begin() as conn:
        b = balance(conn, acct)
        assert b.balance_nano == 0 and b.held_nano == 0
        assert verify(conn) == []


def test_overshoot_beyond_the_reservation_uses_the_lease_then_the_balance(
        engine: Engine) -> None:
    user, acct = _funded(engine, 100_000)

    async def main() -> None:
        db = Database(engine)
        manager = CreditManager(db, ttl_s=30, max_lease_nano=10**9)
        res = await manager.reserve(acct, 10_000, 1_000)
        assert res is not None and res.amount_nano == 10_000
        item = await manager.settle(res, 25_000, _facts(user, 1))  # overshoot: still covered
        assert (item.charged_nano, item.writeoff_nano) == (25_000, 0)
        res = await manager.reserve(acct, 70_000, 1_000)
        assert res is not None
        item = await manager.settle(res, 90_000, _facts(user, 2))  # more than is left
        assert (item.charged_nano, item.writeoff_nano) == (75_000, 15_000)
        assert await manager.reserve(acct, 1, 1) is None
        await manager.close()

    asyncio.run(main())
    with engine.begin() as conn:
        b = balance(conn, acct)
        assert b.balance_nano == 0 and b.held_nano == 0
        assert verify(conn) == []


def test_partial_reservation_when_the_balance_is_low(engine: Engine) -> None:
    _user, acct = _funded(engine, 7_000)

    async def main() -> None:
        manager = CreditManager(Database(engine), ttl_s=30, max_lease_nano=10**9)
        res = await manager.reserve(acct, 10_000, 2_000)
        assert res is not None and res.amount_nano == 7_000
        manager.release(res)
        assert await manager.reserve(acct, 10_000, 8_000) is None
        await manager.close()

    asyncio.run(main())
    with engine.begin() as conn:
        assert balance(conn, acct).available_nano == 7_000


def test_verify_ties_every_usage_record_to_its_transfer(engine: Engine) -> None:
    user, acct = _funded(engine, 100_000)

    async def main() -> None:
        manager = CreditManager(Database(engine), ttl_s=30, max_lease_nano=10**9)
        for n in range(3):
            res = await manager.reserve(acct, 10_000, 1_000)
            assert res is not None
            await manager.settle(res, 7_000 + n, _facts(user, n))
        await manager.close()

    asyncio.run(main())
    with engine.begin() as conn:
        assert verify(conn) == []
        # Move one nano-dollar of a record's charge to write-off: its cost still adds up, but
        # neither its batch's usage transfer nor the write-off account agree any more.
        conn.exec_driver_sql("UPDATE usage_records SET charged_nano = charged_nano - 1, "
                             "writeoff_nano = writeoff_nano + 1 WHERE cost_nano = 7001")
        problems = verify(conn)
    assert any("usage charges differ" in p for p in problems)
    assert any("usage write-offs differ" in p for p in problems)
    assert any("write-off account debits" in p for p in problems)


def test_refusals_of_a_dry_account_cost_no_write_transactions(engine: Engine) -> None:
    user, acct = _funded(engine, 5_000)

    async def main() -> None:
        manager = CreditManager(Database(engine), ttl_s=30, max_lease_nano=10**9)
        res = await manager.reserve(acct, 5_000, 5_000)
        assert res is not None
        await manager.settle(res, 5_000, _facts(user, 0))
        leases_before = _count_leases(engine)
        refused = [await manager.reserve(acct, 1_000, 1_000) for _ in range(50)]
        assert refused == [None] * 50
        assert _count_leases(engine) == leases_before  # no empty lease opened per refusal
        with engine.begin() as conn:  # a top-up is seen once the recheck interval passed
            grant(conn, user.organization_id, 2_000, actor="t", reason="top-up")
        await asyncio.sleep(1.1)
        assert await manager.reserve(acct, 1_000, 1_000) is not None
        await manager.close()

    asyncio.run(main())


def _count_leases(engine: Engine) -> int:
    with engine.begin() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM leases").scalar_one())
