"""The rollup worker: every settled usage record is counted exactly once, at every width, even
while settlements commit concurrently (out of id order on PostgreSQL) and several workers
roll up at once."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from faregate.db.runner import Database
from faregate.db.schema import usage_records, usage_rollups
from faregate.identity.users import User
from faregate.ledger.accounts import org_account_id
from faregate.ledger.leasing import CreditManager
from faregate.ledger.settlement import UsageFacts
from faregate.usage.rollup import WIDTHS, roll_up, rollup_problems, try_safe_bound, watermark
from tests.factories import funded_user


def _facts(user: User, n: int) -> UsageFacts:
    return UsageFacts(
        request_id=f"req_{user.id}_{n}", organization_id=user.organization_id,
        api_key_id=random.choice(["key_a", "key_b", None]), endpoint=random.choice(
            ["chat", "embeddings"]), model=random.choice(["m1", "m2"]), upstream="u",
        prompt_tokens=random.randrange(1, 500), cached_tokens=random.randrange(0, 3),
        completion_tokens=random.randrange(0, 90), usage_source="upstream",
        status=random.choice(["ok", "ok", "upstream_error"]), streamed=False, latency_ms=1,
        project_id=random.choice(["proj_1", "proj_2", None]))


def _totals(conn: sa.Connection, table: sa.Table, width: str | None) -> tuple[int, ...]:
    t = table.c
    if table is usage_rollups:
        cols = (t.requests, t.failed_requests, t.input_tokens, t.cached_tokens,
                t.output_tokens, t.cost_nano, t.charged_nano, t.writeoff_nano)
        where = [t.width == width]
    else:
        failed = sa.case((t.status == "ok", 0), else_=1)
        cols = (sa.literal(1), failed, t.prompt_tokens, t.cached_tokens, t.completion_tokens,
                t.cost_nano, t.charged_nano, t.writeoff_nano)
        where = []
    row = conn.execute(sa.select(*(sa.func.coalesce(sa.func.sum(c), 0) for c in cols))
                       .where(*where)).one()
    return tuple(int(v) for v in row)


def test_every_record_is_rolled_up_once_while_settlements_race(engine: Engine) -> None:
    with engine.begin() as conn:
        user = funded_user(conn, 10**12)
        acct = org_account_id(conn, user.organization_id)
    stop = threading.Event()
    rolled: list[int] = []

    def worker() -> None:  # two workers rolling up while requests settle
        while not stop.is_set():
            with engine.begin() as conn:
                bound = try_safe_bound(conn)
            if bound is not None:
                with engine.begin() as conn:
                    rolled.append(roll_up(conn, bound, batch=37))

    async def spend(m: CreditManager, n: int) -> None:
        res = await m.reserve(acct, 50_000, 1)
        assert res is not None
        await asyncio.sleep(random.random() / 200)
        await m.settle(res, random.randrange(0, 50_000), _facts(user, n))

    async def main() -> None:
        db = Database(engine)
        managers = [CreditManager(db, ttl_s=30, max_lease_nano=10**9) for _ in range(3)]
        try:
            await asyncio.gather(*(spend(managers[i % 3], i) for i in range(400)))
        finally:
            for m in managers:
                await m.close()
            db.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        asyncio.run(main())
    finally:
        stop.set()
        for t in threads:
            t.join()
    with engine.begin() as conn:
        while roll_up(conn):
            pass
    with engine.connect() as conn:
        expected = _totals(conn, usage_records, None)
        assert expected[0] == 400
        for width in WIDTHS:
            assert _totals(conn, usage_rollups, width) == expected, width
        assert watermark(conn).records == 400
        # per group too: one model's day bucket equals its records
        for model in ("m1", "m2"):
            got = conn.execute(sa.select(sa.func.sum(usage_rollups.c.cost_nano)).where(
                usage_rollups.c.width == "1d", usage_rollups.c.model == model)).scalar()
            want = conn.execute(sa.select(sa.func.sum(usage_records.c.cost_nano)).where(
                usage_records.c.model == model)).scalar()
            assert got == want
    assert sum(rolled) <= 400


def _settle_one(engine: Engine, n: int) -> None:
    """A new funded user's request of 1,000 nano-dollars, settled."""
    with engine.begin() as conn:
        user = funded_user(conn, 10**9)
        acct = org_account_id(conn, user.organization_id)

    async def main() -> None:
        db = Database(engine)
        m = CreditManager(db, ttl_s=30, max_lease_nano=10**9)
        try:
            res = await m.reserve(acct, 1000, 1)
            assert res is not None
            await m.settle(res, 1000, _facts(user, n))
        finally:
            await m.close()
            db.close()

    asyncio.run(main())


def test_bucket_boundaries_are_utc(engine: Engine) -> None:
    _settle_one(engine, 0)
    with engine.begin() as conn:
        assert roll_up(conn) == 1
        settled = conn.execute(sa.select(usage_records.c.settled_at)).scalar_one()
        epoch = int(settled.timestamp())
        for width, seconds in WIDTHS.items():
            start = conn.execute(sa.select(usage_rollups.c.bucket_start).where(
                usage_rollups.c.width == width)).scalar_one()
            assert start == epoch - epoch % seconds


def test_verify_reports_a_rollup_that_differs(engine: Engine) -> None:
    test_bucket_boundaries_are_utc(engine)
    with engine.begin() as conn:
        assert rollup_problems(conn) == []
        conn.execute(usage_rollups.update().where(usage_rollups.c.width == "1h")
                     .values(cost_nano=usage_rollups.c.cost_nano + 1))
        problems = rollup_problems(conn)
    assert len(problems) == 1 and "1h usage rollups differ" in problems[0]


@pytest.mark.postgres
def test_a_roll_up_waits_for_a_verify_in_progress(pg_engine: Engine) -> None:
    """Verify reads the watermark, the records and the rollups in separate statements; a
    roll-up committing between them would show as a difference that is not there (seen in a
    test run), so on PostgreSQL a verify holds the watermark row until its transaction ends.
    (On SQLite a read transaction sees one snapshot throughout.)"""
    engine = pg_engine
    test_bucket_boundaries_are_utc(engine)  # one record, rolled up: the watermark row exists
    _settle_one(engine, 1)
    with engine.begin() as verifying:
        assert rollup_problems(verifying) == []
        with engine.begin() as rolling:
            rolling.exec_driver_sql("SET LOCAL lock_timeout = '300ms'")
            with pytest.raises(sa.exc.OperationalError, match="lock timeout"):
                roll_up(rolling, bound=10**9)  # it waits for the verify's transaction
    with engine.begin() as rolling:
        assert roll_up(rolling, bound=10**9) == 1
        assert rollup_problems(rolling) == []

