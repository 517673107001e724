"""A settlement attempt that fails after its commit took effect (the connection breaks before
the acknowledgement arrives): the committer finds the batch's usage records before retrying,
so the cost is posted once, the waiting request is answered normally and the process's leases
stay in step with the database. An attempt that failed before committing is simply retried."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
from sqlalchemy.engine import Engine

from faregate.db.runner import Database
from faregate.db.statement import StatementConnection
from faregate.ledger import leases
from faregate.ledger.accounts import balance, org_account_id
from faregate.ledger.leasing import CreditManager
from faregate.ledger.settlement import UsageFacts, settle_batch
from faregate.ledger.verify import verify
from tests.factories import funded_user

FUNDS = 1_000_000
COST = 10_000


def _lost(where: str) -> sa.exc.OperationalError:
    return sa.exc.OperationalError(where, None, ConnectionError("server closed the connection"))


def _usage(n: int, org: str) -> UsageFacts:
    return UsageFacts(request_id=f"req_lost_{org}_{n}", organization_id=org, api_key_id=None,
                      endpoint="chat", model="m", upstream="u", prompt_tokens=3,
                      cached_tokens=0, completion_tokens=n, usage_source="upstream",
                      status="ok", streamed=False, latency_ms=1)


def _recovered() -> float:
    return REGISTRY.get_sample_value("faregate_settlement_batch_size_count",
                                     {"path": "recovered"}) or 0.0


def _check(engine: Engine, acct: int, requests: int) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE leases SET expires_at_ms = 0")  # hand back what is held
        leases.void_lapsed(conn)
        assert balance(conn, acct).balance_nano == FUNDS - requests * COST
        assert conn.execute(sa.text("SELECT count(*), sum(charged_nano) FROM usage_records")
                            ).one() == (requests, requests * COST)
        assert verify(conn) == []


async def _serve(manager: CreditManager, acct: int, org: str, first: int, n: int) -> None:
    for i in range(first, first + n):
        res = await manager.reserve(acct, COST, COST)
        assert res is not None
        item = await manager.settle(res, COST, _usage(i, org))
        assert (item.charged_nano, item.writeoff_nano) == (COST, 0)
        assert item.settled_at is not None


@pytest.mark.postgres
@pytest.mark.parametrize("lost", ["after_commit", "before_commit"])
def test_a_lost_acknowledgement_of_the_one_statement(pg_engine: Engine, lost: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with pg_engine.begin() as conn:
        user = funded_user(conn, FUNDS)
        acct = org_account_id(conn, user.organization_id)
    real = StatementConnection.fetchall
    faults = [1]

    async def lossy(self: StatementConnection, sql: str, params: tuple[object, ...]) -> Any:
        if "INSERT INTO usage_records" in sql and faults:
            faults.pop()
            if lost == "before_commit":
                raise _lost("connect")
            await real(self, sql, params)
            raise _lost("the statement's result")
        return await real(self, sql, params)

    monkeypatch.setattr(StatementConnection, "fetchall", lossy)
    before = _recovered()

    async def main() -> None:
        db = Database(pg_engine)
        manager = CreditManager(db, ttl_s=30, max_lease_nano=10**9)
        await _serve(manager, acct, user.organization_id, 0, 1)  # answered, not an error
        assert not faults
        # The lease in memory was deducted once: the next requests settle from it as usual
        # (a lease that disagreed with the database would fail its check).
        await _serve(manager, acct, user.organization_id, 1, 3)
        await manager.close()
        db.close()

    asyncio.run(main())
    assert _recovered() - before == (1 if lost == "after_commit" else 0)
    _check(pg_engine, acct, 4)


def test_a_lost_acknowledgement_of_the_full_transaction(engine: Engine,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    with engine.begin() as conn:
        user = funded_user(conn, FUNDS)
        acct = org_account_id(conn, user.organization_id)
    before = _recovered()

    async def main() -> None:
        db = Database(engine)
        real = db.run
        faults = [1]

        async def lossy(fn: Any, *args: object) -> Any:
            out = await real(fn, *args)
            if fn is settle_batch and faults:
                faults.pop()
                raise _lost("COMMIT")
            return out

        monkeypatch.setattr(db, "run", lossy)
        manager = CreditManager(db, ttl_s=30, max_lease_nano=10**9)
        await _serve(manager, acct, user.organization_id, 0, 1)
        # SQLite settles by the full transaction; on PostgreSQL the process stalls first and
        # its lease is voided, so the batch falls to it.
        res = await manager.reserve(acct, COST, COST)
        assert res is not None
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE leases SET expires_at_ms = 0")
            assert leases.void_lapsed(conn) >= 1  # on SQLite, also the lease counted gone
        item = await manager.settle(res, COST, _usage(1, user.organization_id))
        assert (item.charged_nano, item.writeoff_nano) == (COST, 0)
        assert not faults
        # Its leases count as gone: the process takes a new one and goes on.
        await _serve(manager, acct, user.organization_id, 2, 3)
        await manager.close()
        db.close()

    asyncio.run(main())
    assert _recovered() - before == 1
    _check(engine, acct, 5)
