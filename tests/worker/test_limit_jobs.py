"""A key's limit lowered while a server holds part of it, on SQLite and PostgreSQL: the change
gives back at once only what is free; the server's `renew` gives back its lease's spare part
and moves the account in the same transaction, its requests in flight settle on the old lease,
whose rest returns once they finish; the limit job then moves the account to the limit, and
moves nothing that is already right. The ledger verifies clean throughout."""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import Engine

from faregate.api_keys.service import KeySpec, issue_key
from faregate.api_keys.spend_limits import bring_to_limit, limits_off_target, set_spend_limit
from faregate.db.runner import Database
from faregate.identity.users import User
from faregate.ledger.accounts import balance, open_leases_total, org_account_id
from faregate.ledger.leasing import CreditManager, Reservation
from faregate.ledger.limits import ensure_limit_account, key_limit_code, limit_use
from faregate.ledger.limits import window as limit_window
from faregate.ledger.settlement import UsageFacts
from faregate.ledger.verify import verify
from faregate.worker.limit_jobs import settle_key_limits
from tests.factories import funded_user


def _setup(engine: Engine, limit: int) -> tuple[User, str, str, int, int]:
    with engine.begin() as conn:
        user = funded_user(conn, 10**9)
        key = issue_key(conn, organization_id=user.organization_id, user_id=user.id, name="k",
                        pepper=b"p" * 32, spec=KeySpec(name="k", spend_limit_nano=limit,
                                                       spend_limit_period="day"))
        code = key_limit_code(key.id, limit_window("day"))
        lim = ensure_limit_account(conn, code=code, organization_id=user.organization_id,
                                   limit_nano=limit)
        return user, key.id, code, org_account_id(conn, user.organization_id), lim


def _facts(user: User, key_id: str, n: int) -> UsageFacts:
    return UsageFacts(request_id=f"req_{user.id}_{n}", organization_id=user.organization_id,
                      api_key_id=key_id, endpoint="chat", model="m", upstream="u",
                      prompt_tokens=1, cached_tokens=0, completion_tokens=1,
                      usage_source="upstream", status="ok", streamed=False, latency_ms=1)


def _in_force(engine: Engine, code: str) -> tuple[int, int, int]:
    """(limit in force, spent, held) of the limit account."""
    with engine.begin() as conn:
        use = limit_use(conn, code)
        assert use is not None
        return use.limit_nano, use.spent_nano, use.held_nano


def test_a_lowered_limit_reaches_its_target(engine: Engine) -> None:
    user, key_id, code, acct, lim = _setup(engine, 1_000_000)

    async def main() -> None:
        db = Database(engine)
        m = CreditManager(db, ttl_s=30, max_lease_nano=800_000)
        try:
            first = await m.reserve_joint((acct, lim), 100_000, 100_000)
            assert isinstance(first, Reservation)
            await m.settle(first, 100_000, _facts(user, key_id, 1))
            in_flight = await m.reserve_joint((acct, lim), 200_000, 200_000)
            assert isinstance(in_flight, Reservation)
            leased = _in_force(engine, code)[2]
            assert leased >= 300_000  # the lease holds more than the request in flight

            # The owner lowers the limit: only what no lease holds comes back at once.
            with engine.begin() as conn:
                set_spend_limit(conn, key_id, organization_id=user.organization_id,
                                limit_nano=250_000, period=..., actor="user:t")
            limit, spent, held = _in_force(engine, code)
            assert spent == 100_000 and held == leased and limit == spent + held

            # The server sees the change: its lease's spare part goes back, and the account
            # moves in the same transaction; the request in flight keeps its 200,000.
            await m.renew(lim, then=lambda conn: bring_to_limit(conn, key_id,
                                                                  actor="gateway"))
            limit, spent, held = _in_force(engine, code)
            assert held == 200_000 and limit == 300_000  # 100,000 spent + 200,000 in flight
            with engine.begin() as conn:
                assert limits_off_target(conn) == []  # nothing is free to give back yet
                assert not bring_to_limit(conn, key_id)
                assert verify(conn) == []

            # The request in flight finishes under the old terms; its unspent rest returns
            # when the drained lease is closed, and the job takes it back to the target.
            await m.settle(in_flight, 120_000, _facts(user, key_id, 2))
            await m.committer.drain()
            await m.maintain()
            limit, spent, held = _in_force(engine, code)
            assert (spent, held) == (220_000, 0) and limit == 300_000
            with engine.begin() as conn:
                assert limits_off_target(conn) == [key_id]
            assert await settle_key_limits(db) == 1
            assert _in_force(engine, code) == (250_000, 220_000, 0)
            assert await settle_key_limits(db) == 0  # already right: nothing moves

            # New requests are held to the new limit exactly: 30,000 is left.
            assert not isinstance(await m.reserve_joint((acct, lim), 40_000, 40_000),
                                  Reservation)
            last = await m.reserve_joint((acct, lim), 40_000, 1_000)
            assert isinstance(last, Reservation) and last.amount_nano == 30_000
            await m.settle(last, 30_000, _facts(user, key_id, 3))
        finally:
            await m.close()
            db.close()

    asyncio.run(main())
    with engine.begin() as conn:
        use = limit_use(conn, code)
        assert use is not None and (use.limit_nano, use.spent_nano) == (250_000, 250_000)
        assert balance(conn, lim).held_nano == 0 and open_leases_total(conn, lim) == 0
        assert balance(conn, acct).debits_nano == 250_000
        assert verify(conn) == []


def test_the_job_raises_an_account_made_from_a_stale_limit(engine: Engine) -> None:
    """The limit was raised before the period's account existed, and a server whose key
    cache was a moment old made the account with the old limit: the job raises it. A lowered
    limit already in force, and other keys, are left alone."""
    user, key_id, code, _, _ = _setup(engine, 500_000)
    with engine.begin() as conn:
        later = issue_key(conn, organization_id=user.organization_id, user_id=user.id,
                          name="later", pepper=b"p" * 32,
                          spec=KeySpec(name="later", spend_limit_nano=500_000,
                                       spend_limit_period="week"))
        set_spend_limit(conn, later.id, organization_id=user.organization_id,
                        limit_nano=900_000, period=..., actor="user:t")
        later_code = key_limit_code(later.id, limit_window("week"))
        assert limit_use(conn, later_code) is None  # made on first use
        ensure_limit_account(conn, code=later_code, organization_id=user.organization_id,
                             limit_nano=500_000)  # by a server with the old limit
        set_spend_limit(conn, key_id, organization_id=user.organization_id,
                        limit_nano=300_000, period=..., actor="user:t")  # all of it free
        assert sorted(limits_off_target(conn)) == sorted([key_id, later.id])
    assert asyncio.run(settle_key_limits(Database(engine))) == 1
    assert _in_force(engine, later_code)[0] == 900_000
    assert _in_force(engine, code)[0] == 300_000
    with engine.begin() as conn:
        assert limits_off_target(conn) == [key_id]  # over, with room: checked, not moved
        assert not bring_to_limit(conn, key_id)
        set_spend_limit(conn, key_id, organization_id=user.organization_id,
                        limit_nano=None, period=..., actor="user:t")
        assert not bring_to_limit(conn, key_id)  # no limit: its account is left as it is
        assert limits_off_target(conn) == []
        assert verify(conn) == []
