"""The one-statement settlement of PostgreSQL's common batch (every cost covered by its lease):
it posts exactly what the full transaction would, and when any lease check fails it changes
nothing and says so, leaving the batch to the full path."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
from sqlalchemy.engine import Engine

from faregate.db.outage import UNAVAILABLE
from faregate.db.runner import Database
from faregate.db.statement import StatementConnection
from faregate.identity.users import User
from faregate.ledger import leases
from faregate.ledger.accounts import balance, org_account_id
from faregate.ledger.leasing import CreditManager
from faregate.ledger.settlement import (
    BatchOutcome,
    Settlement,
    SystemAccounts,
    UsageFacts,
    settle_batch,
    settle_leased_pg,
)
from faregate.ledger.verify import verify
from tests.factories import funded_user

pytestmark = pytest.mark.postgres


def _setup(engine: Engine, funds: int, lease_nano: int) -> tuple[User, int, int, SystemAccounts]:
    with engine.begin() as conn:
        user = funded_user(conn, funds)
        acct = org_account_id(conn, user.organization_id)
        grant = leases.acquire(conn, acct_id=acct, lease_id=None, owner="test:1:x",
                               deficit_nano=lease_nano, ask_nano=lease_nano, ttl_ms=60_000)
        assert grant is not None and grant.granted_nano == lease_nano
        return user, acct, grant.lease_id, SystemAccounts.load(conn)


def _item(user: User, acct: int, lease_id: int | None, n: int, cost: int,
          from_lease: int | None = None) -> Settlement:
    facts = UsageFacts(request_id=f"req_{user.id}_{n}", organization_id=user.organization_id,
                       api_key_id=None, endpoint="chat", model="m", upstream="u",
                       prompt_tokens=3, cached_tokens=0, completion_tokens=n,
                       usage_source="upstream", status="ok", streamed=False, latency_ms=1)
    return Settlement(acct_id=acct, lease_id=lease_id, cost_nano=cost,
                      from_lease_nano=cost if from_lease is None else from_lease, usage=facts)


def _state(engine: Engine, acct: int, lease_id: int) -> tuple[object, ...]:
    with engine.begin() as conn:
        return (balance(conn, acct),
                conn.execute(sa.text("SELECT amount_nano, status FROM leases WHERE id = :i"),
                             {"i": lease_id}).one(),
                conn.execute(sa.text("SELECT count(*) FROM usage_records")).scalar(),
                conn.execute(sa.text("SELECT count(*) FROM transfers")).scalar(),
                conn.execute(sa.text("SELECT sum(credits_nano), sum(debits_nano) "
                                     "FROM accounts")).one())


def _autocommit(engine: Engine, items: list[Settlement],
                system: SystemAccounts) -> BatchOutcome | None:
    async def run() -> BatchOutcome | None:
        conn = StatementConnection(engine.url)
        try:
            return await settle_leased_pg(conn, items, system)
        finally:
            await conn.close()
    return asyncio.run(run())


def test_a_covered_batch_posts_what_the_full_path_posts(pg_engine: Engine) -> None:
    user, acct, lease_id, system = _setup(pg_engine, 1_000_000, 100_000)
    items = [_item(user, acct, lease_id, 1, 30_000), _item(user, acct, lease_id, 2, 12_345),
             _item(user, acct, None, 3, 0)]
    outcome = _autocommit(pg_engine, items, system)
    assert outcome is not None
    assert outcome.lease_deducted == {lease_id: 42_345}
    assert [(i.charged_nano, i.writeoff_nano) for i in items] == [(30_000, 0), (12_345, 0),
                                                                   (0, 0)]
    with pg_engine.begin() as conn:
        b = balance(conn, acct)
        assert (b.balance_nano, b.held_nano) == (1_000_000 - 42_345, 100_000 - 42_345)
        assert conn.execute(sa.text("SELECT amount_nano FROM leases WHERE id = :i"),
                            {"i": lease_id}).scalar() == 100_000 - 42_345
        rows = conn.execute(sa.text(
            "SELECT request_id, cost_nano, charged_nano, settlement_id IS NOT NULL "
            "FROM usage_records ORDER BY request_id")).all()
        assert [tuple(r) for r in rows] == [(f"req_{user.id}_1", 30_000, 30_000, True),
                                            (f"req_{user.id}_2", 12_345, 12_345, True),
                                            (f"req_{user.id}_3", 0, 0, True)]
        assert verify(conn) == []

    # The same batch through the full transaction leaves the same balances behind.
    user2, acct2, lease2, _ = _setup(pg_engine, 1_000_000, 100_000)
    with pg_engine.begin() as conn:
        settle_batch(conn, [_item(user2, acct2, lease2, 1, 30_000),
                            _item(user2, acct2, lease2, 2, 12_345),
                            _item(user2, acct2, None, 3, 0)], system)
        assert balance(conn, acct2) == balance(conn, acct)
        assert verify(conn) == []


@pytest.mark.parametrize("spoil", ["voided", "short"])
def test_a_failed_lease_check_changes_nothing(pg_engine: Engine, spoil: str) -> None:
    user, acct, lease_id, system = _setup(pg_engine, 1_000_000, 100_000)
    with pg_engine.begin() as conn:  # another account's lease, settled in the same batch
        other = funded_user(conn, 500_000)
        other_acct = org_account_id(conn, other.organization_id)
        good = leases.acquire(conn, acct_id=other_acct, lease_id=None, owner="test:1:x",
                              deficit_nano=50_000, ask_nano=50_000, ttl_ms=60_000)
        assert good is not None
        if spoil == "voided":  # the sweeper voided the lease: its credit is back in the balance
            conn.exec_driver_sql("UPDATE leases SET expires_at_ms = 0 WHERE id = %s",
                                 (lease_id,))
            assert leases.void_lapsed(conn) == 1
    before = _state(pg_engine, acct, lease_id), _state(pg_engine, other_acct, good.lease_id)
    cost = 150_000 if spoil == "short" else 10_000  # "short": more than the lease holds
    items = [_item(other, other_acct, good.lease_id, 1, 20_000),
             _item(user, acct, lease_id, 2, cost)]
    assert _autocommit(pg_engine, items, system) is None
    assert all(i.charged_nano == 0 and i.settled_at is None for i in items)
    assert (_state(pg_engine, acct, lease_id),
            _state(pg_engine, other_acct, good.lease_id)) == before

    # The full path then settles the batch: the lease that passed is deducted, the other
    # request is charged from the balance.
    with pg_engine.begin() as conn:
        out = settle_batch(conn, items, system)
        assert out.lease_deducted == {good.lease_id: 20_000}
        assert out.leases_gone == {lease_id}
        assert [i.charged_nano for i in items] == [20_000, cost]
        assert verify(conn) == []


def test_a_batch_with_an_uncovered_cost_is_left_to_the_full_path(pg_engine: Engine) -> None:
    user, acct, lease_id, system = _setup(pg_engine, 1_000_000, 100_000)
    before = _state(pg_engine, acct, lease_id)
    items = [_item(user, acct, lease_id, 1, 10_000),
             _item(user, acct, lease_id, 2, 10_000, from_lease=4_000)]
    assert _autocommit(pg_engine, items, system) is None
    assert _state(pg_engine, acct, lease_id) == before


def _batches(path: str) -> float:
    return REGISTRY.get_sample_value("faregate_settlement_batch_size_count",
                                     {"path": path}) or 0.0


def test_the_committer_takes_one_statement_unless_a_lease_lapsed(pg_engine: Engine) -> None:
    with pg_engine.begin() as conn:
        user = funded_user(conn, 1_000_000)
        acct = org_account_id(conn, user.organization_id)
    before = _batches("one_statement"), _batches("transaction")

    async def main() -> None:
        db = Database(pg_engine)
        manager = CreditManager(db, ttl_s=30, max_lease_nano=10**9)
        for n in range(3):
            res = await manager.reserve(acct, 10_000, 10_000)
            assert res is not None
            await manager.settle(res, 10_000, _item(user, acct, None, n, 0).usage)
        assert (_batches("one_statement") - before[0], _batches("transaction") - before[1]) \
            == (3, 0)
        res = await manager.reserve(acct, 10_000, 10_000)
        assert res is not None
        with pg_engine.begin() as conn:  # the process stalls: its lease lapses and is voided
            conn.exec_driver_sql("UPDATE leases SET expires_at_ms = 0")
            assert leases.void_lapsed(conn) == 1
        item = await manager.settle(res, 10_000, _item(user, acct, None, 9, 0).usage)
        assert item.charged_nano == 10_000  # from the balance, by the full transaction
        assert _batches("transaction") - before[1] == 1
        await manager.close()
        db.close()

    asyncio.run(main())
    with pg_engine.begin() as conn:
        assert balance(conn, acct).balance_nano == 1_000_000 - 40_000
        assert verify(conn) == []


def test_the_statement_connection_comes_back_after_its_backend_is_killed(
        pg_engine: Engine) -> None:
    async def run() -> None:
        conn = StatementConnection(pg_engine.url)
        [(pid,)] = await conn.fetchall("SELECT pg_backend_pid()", ())
        with pg_engine.begin() as admin:
            admin.exec_driver_sql("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(UNAVAILABLE):  # as the pool's errors: a 503, a retried batch
            await conn.fetchall("SELECT 1", ())
        [(again,)] = await conn.fetchall("SELECT pg_backend_pid()", ())
        assert again != pid
        await conn.close()

    asyncio.run(run())
