"""Spend limits reserved jointly with the balance: exact under concurrency and across
several credit managers (processes), each charge debited from the limit too, overshoot
written off rather than taken past the limit, and periods on UTC calendar boundaries."""

from __future__ import annotations

import asyncio
import datetime as dt
import random

import pytest
from sqlalchemy.engine import Engine

from faregate.db.runner import Database
from faregate.identity.users import User, create_user
from faregate.ledger.accounts import balance, open_leases_total, org_account_id
from faregate.ledger.leases import void_lapsed
from faregate.ledger.leasing import CreditManager, Reservation, Shortfall
from faregate.ledger.limits import ensure_limit_account, resize_limit, window
from faregate.ledger.settlement import UsageFacts
from faregate.ledger.verify import verify
from tests.factories import funded_user


def _setup(engine: Engine, funds: int, limit: int) -> tuple[User, int, int]:
    with engine.begin() as conn:
        user = funded_user(conn, funds)
        acct = org_account_id(conn, user.organization_id)
        lim = ensure_limit_account(conn, code="key:key_x:day:x",
                                   organization_id=user.organization_id, limit_nano=limit)
        return user, acct, lim


def _facts(user: User, n: int, key_id: str | None = None) -> UsageFacts:
    return UsageFacts(request_id=f"req_{user.id}_{n}", organization_id=user.organization_id,
                      api_key_id=key_id, endpoint="chat", model="m", upstream="u",
                      prompt_tokens=1, cached_tokens=0, completion_tokens=1,
                      usage_source="upstream", status="ok", streamed=False, latency_ms=1)


def test_joint_reservations_never_exceed_the_limit_across_processes(engine: Engine) -> None:
    user, acct, lim = _setup(engine, 10_000_000, 1_000_000)  # the limit is the binding one

    async def spend(m: CreditManager, n: int) -> bool:
        got = await m.reserve_joint((acct, lim), 10_000, 10_000)
        if isinstance(got, Shortfall):
            assert got.index == 1  # the limit ran out, not the balance
            return False
        await asyncio.sleep(random.random() / 1000)
        await m.settle(got, 10_000, _facts(user, n, "key_x"))
        return True

    async def main() -> list[bool]:
        db = Database(engine)
        managers = [CreditManager(db, ttl_s=30, max_lease_nano=10**9) for _ in range(3)]
        try:
            return await asyncio.gather(*(spend(managers[i % 3], i) for i in range(300)))
        finally:
            for m in managers:
                await m.close()

    served = asyncio.run(main())
    with engine.begin() as conn:
        spent = balance(conn, lim)
        assert spent.debits_nano == 10_000 * sum(served) <= 1_000_000
        assert balance(conn, acct).debits_nano == spent.debits_nano
        assert spent.held_nano == 0 and open_leases_total(conn, lim) == 0
        assert verify(conn) == []
    assert 50 <= sum(served) <= 100


def test_the_balance_binds_when_it_is_smaller(engine: Engine) -> None:
    _user, acct, lim = _setup(engine, 25_000, 1_000_000)

    async def main() -> tuple[Reservation | Shortfall, Reservation | Shortfall]:
        m = CreditManager(Database(engine), ttl_s=30, max_lease_nano=10**9)
        try:
            first = await m.reserve_joint((acct, lim), 20_000, 20_000)
            second = await m.reserve_joint((acct, lim), 20_000, 1_000)
            assert isinstance(first, Reservation) and isinstance(second, Reservation)
            assert second.amount_nano == 5_000 and second.limited_by == 0
            third = await m.reserve_joint((acct, lim), 20_000, 1_000)
            for res in (first, second):
                m.release(res)
            return first, third
        finally:
            await m.close()

    _, third = asyncio.run(main())
    assert third == Shortfall(0)
    with engine.begin() as conn:
        assert balance(conn, acct).held_nano == 0 and balance(conn, lim).held_nano == 0
        assert verify(conn) == []


def test_overshoot_is_capped_by_the_limit_and_written_off(engine: Engine) -> None:
    user, acct, lim = _setup(engine, 1_000_000, 30_000)

    async def main() -> int:
        m = CreditManager(Database(engine), ttl_s=30, max_lease_nano=10**9)
        try:
            res = await m.reserve_joint((acct, lim), 20_000, 20_000)
            assert isinstance(res, Reservation)
            item = await m.settle(res, 50_000, _facts(user, 1, "key_x"))  # upstream overshot
            return item.charged_nano
        finally:
            await m.close()

    charged = asyncio.run(main())
    assert charged == 30_000  # all the limit had; the other 20,000 written off
    with engine.begin() as conn:
        assert balance(conn, lim).debits_nano == 30_000
        assert balance(conn, acct).debits_nano == 30_000
        assert verify(conn) == []


def test_a_voided_limit_lease_is_not_charged_twice(engine: Engine) -> None:
    """The limit's lease lapses and is voided mid-request: the charge falls back on the
    limit's available room and the balance is debited the same amount, no more."""
    user, acct, lim = _setup(engine, 1_000_000, 100_000)

    async def main() -> int:
        m = CreditManager(Database(engine), ttl_s=5, max_lease_nano=10**9)
        try:
            res = await m.reserve_joint((acct, lim), 40_000, 40_000)
            assert isinstance(res, Reservation)
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    f"UPDATE leases SET expires_at_ms = 0 WHERE account_id = {lim}")
                assert void_lapsed(conn) == 1
            item = await m.settle(res, 30_000, _facts(user, 1, "key_x"))
            return item.charged_nano
        finally:
            await m.close()

    charged = asyncio.run(main())
    assert charged == 30_000
    with engine.begin() as conn:
        assert balance(conn, lim).debits_nano == 30_000
        assert balance(conn, acct).debits_nano == 30_000
        assert balance(conn, acct).held_nano == 0
        assert verify(conn) == []


def test_limit_accounts_are_made_once(engine: Engine) -> None:
    with engine.begin() as conn:
        user = create_user(conn, f"u{random.randrange(10**9)}@example.com")
        a = ensure_limit_account(conn, code="key:k:month:2026-11-01",
                                 organization_id=user.organization_id, limit_nano=5)
        b = ensure_limit_account(conn, code="key:k:month:2026-11-01",
                                 organization_id=user.organization_id, limit_nano=5)
        assert a == b and balance(conn, a).credits_nano == 5
        assert verify(conn) == []


@pytest.mark.parametrize(("now", "period", "start", "end"), [
    ("2026-11-27T23:59:59", "day", "2026-11-27", "2026-11-28"),
    ("2026-11-29T12:00:00", "week", "2026-11-23", "2026-11-30"),  # Sunday: week began Monday
    ("2026-11-30T00:00:00", "week", "2026-11-30", "2026-12-07"),
    ("2026-12-31T23:00:00", "month", "2026-12-01", "2027-01-01"),
    ("2027-02-10T05:00:00", "month", "2027-02-01", "2027-03-01"),
])
def test_periods_follow_the_utc_calendar(now: str, period: str, start: str, end: str) -> None:
    w = window(period, dt.datetime.fromisoformat(now).replace(tzinfo=dt.UTC))  # type: ignore[arg-type]
    assert w.start.date().isoformat() == start and w.end.date().isoformat() == end


def test_resizing_a_limit_moves_only_what_is_free(engine: Engine) -> None:
    user, acct, lim = _setup(engine, 10_000_000, 1_000_000)
    code = "key:key_x:day:x"

    async def hold(m: CreditManager) -> Reservation:
        got = await m.reserve_joint((acct, lim), 600_000, 600_000)
        assert isinstance(got, Reservation)
        return got

    async def main() -> None:
        db = Database(engine)
        m = CreditManager(db, ttl_s=30, max_lease_nano=600_000)
        try:
            res = await hold(m)
            with engine.begin() as conn:  # 600k held: lowering to 100k can free only 400k
                assert resize_limit(conn, code, 100_000, actor="t") == 600_000
                assert resize_limit(conn, code, 100_000, actor="t") == 600_000
            await m.settle(res, 50_000, _facts(user, 1, "key_x"))
            await m.close()
            with engine.begin() as conn:  # the lease is back: the rest moves, to the target
                assert resize_limit(conn, code, 100_000, actor="t") == 100_000
                assert resize_limit(conn, code, 250_000, actor="t") == 250_000
                assert resize_limit(conn, "key:nope:day:x", 1, actor="t") is None
                assert verify(conn) == []
        finally:
            db.close()

    asyncio.run(main())
