"""Credit lots: promotional credit is used first, paid credit oldest first; lots past their date
expire what is left of them, never more than the account has available; the worker is exact
when run twice or concurrently; `ledger verify` checks the lots."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import threading

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from faregate.billing.credit import credit_payment
from faregate.billing.refunds import take_back
from faregate.db.engine import create_engine
from faregate.db.migrate import upgrade
from faregate.db.runner import Database
from faregate.db.schema import credit_lots, organizations, transfers
from faregate.identity.users import create_user
from faregate.ledger.accounts import (
    GRANTS,
    REVENUE,
    account_id,
    balance,
    open_org_account,
    org_account_id,
)
from faregate.ledger.history import history
from faregate.ledger.leasing import CreditManager, Reservation
from faregate.ledger.lot_expiry import settle_account
from faregate.ledger.lots import EXPIRED, add_months, upcoming_expirations
from faregate.ledger.settlement import UsageFacts
from faregate.ledger.transfers import Transfer, grant, post_transfer
from faregate.ledger.verify import verify
from faregate.payments.processor import Charge
from faregate.worker.credit_jobs import settle_credit_lots

USD = 10**9
_n = itertools.count()
NOW = dt.datetime.now(dt.UTC)
LATER = NOW + dt.timedelta(days=400)  # past every 12-month lot made by these tests


def _org(engine: Engine) -> tuple[str, int]:
    with engine.begin() as conn:
        user = create_user(conn, f"lots{next(_n)}@example.com")
        return user.organization_id, org_account_id(conn, user.organization_id)


def _pay(engine: Engine, org: str, usd: int, payment_id: str | None = None) -> Transfer:
    charge = Charge(status="succeeded", payment_id=payment_id or f"pi_lots{next(_n)}",
                    amount_minor=usd * 100, currency="usd", customer_id=None, method_id=None)
    with engine.begin() as conn:
        return credit_payment(conn, processor="sandbox", charge=charge, organization_id=org)


def _grant(engine: Engine, org: str, usd: int, expires_at: dt.datetime | None = None) -> None:
    with engine.begin() as conn:
        grant(conn, org, usd * USD, actor="t", reason="promo", expires_at=expires_at)


def _facts(org: str) -> UsageFacts:
    return UsageFacts(request_id=f"req_lots_{next(_n)}", organization_id=org, api_key_id=None,
                      endpoint="chat", model="m", upstream="u", prompt_tokens=1,
                      cached_tokens=0, completion_tokens=1, usage_source="upstream",
                      status="ok", streamed=False, latency_ms=1)


def _spend(engine: Engine, org: str, acct: int, amount: int) -> None:
    """Spend through the real path: a lease, a reservation, a settlement, the lease returned."""
    async def go() -> None:
        manager = CreditManager(Database(engine), ttl_s=30, max_lease_nano=1000 * USD)
        res = await manager.reserve(acct, amount, amount)
        assert res is not None
        await manager.settle(res, amount, _facts(org))
        await manager.close()
    asyncio.run(go())


def _settle(engine: Engine, now: dt.datetime = NOW, months: int = 12) -> int:
    return asyncio.run(settle_credit_lots(Database(engine), paid_months=months, now=now))


def _lots(engine: Engine, acct: int) -> list[tuple[str, int, int, int]]:
    """(kind, amount, remaining, expired) in USD, in creation order."""
    with engine.begin() as conn:
        rows = conn.execute(sa.select(credit_lots).where(credit_lots.c.account_id == acct)
                            .order_by(credit_lots.c.id)).all()
    return [(r.kind, r.amount_nano // USD, r.remaining_nano // USD, r.expired_nano // USD)
            for r in rows]


def _expiries(engine: Engine, acct: int) -> list[int]:
    with engine.begin() as conn:
        return [int(a) for a in conn.execute(
            sa.select(transfers.c.amount_nano).where(transfers.c.kind == "credit_expiry",
                                                     transfers.c.debit_account_id == acct)
            .order_by(transfers.c.id)).scalars()]


def _verify(engine: Engine) -> list[str]:
    with engine.begin() as conn:
        return verify(conn)


def test_promotional_credit_is_used_first(engine: Engine) -> None:
    org, acct = _org(engine)
    _pay(engine, org, 10)
    _grant(engine, org, 5)
    _spend(engine, org, acct, 7 * USD)
    _settle(engine)
    assert _lots(engine, acct) == [("paid", 10, 8, 0), ("promotional", 5, 0, 0)]
    assert _verify(engine) == []


def test_paid_credit_is_used_oldest_first_promotional_soonest_expiring_first(
        engine: Engine) -> None:
    org, acct = _org(engine)
    _pay(engine, org, 10)
    _pay(engine, org, 10)
    _grant(engine, org, 1)  # never expires
    _grant(engine, org, 1, expires_at=NOW + dt.timedelta(days=30))
    _spend(engine, org, acct, 3 * USD)
    _settle(engine)
    assert _lots(engine, acct) == [("paid", 10, 9, 0), ("paid", 10, 10, 0),
                                   ("promotional", 1, 0, 0), ("promotional", 1, 0, 0)]
    _spend(engine, org, acct, 10 * USD)  # allocated by the next run, from where it left off
    _settle(engine)
    assert _lots(engine, acct) == [("paid", 10, 0, 0), ("paid", 10, 9, 0),
                                   ("promotional", 1, 0, 0), ("promotional", 1, 0, 0)]
    assert _verify(engine) == []


def test_paid_credit_expires_after_the_period(engine: Engine) -> None:
    org, acct = _org(engine)
    paid = _pay(engine, org, 10)
    _spend(engine, org, acct, 3 * USD)
    assert _settle(engine) == 0
    with engine.begin() as conn:
        lot = conn.execute(sa.select(credit_lots).where(credit_lots.c.account_id == acct)).one()
        assert lot.term_months == 12 and lot.expires_at == add_months(paid.created_at, 12)
        assert [(e.kind, e.remaining_nano) for e in upcoming_expirations(
            conn, acct, paid_months=12)] == [("paid", 7 * USD)]
    assert _settle(engine, lot.expires_at - dt.timedelta(seconds=1)) == 0
    assert _settle(engine, lot.expires_at) == 7 * USD
    assert _lots(engine, acct) == [("paid", 10, 0, 7)]
    with engine.begin() as conn:
        assert balance(conn, acct).balance_nano == 0
        assert balance(conn, account_id(conn, EXPIRED)).credits_nano == 7 * USD
        entry = history(conn, acct, limit=1)[0]
        assert (entry.kind, entry.amount_nano) == ("credit_expiry", -7 * USD)
        assert entry.reason is not None and "expired" in entry.reason
        assert upcoming_expirations(conn, acct, paid_months=12) == []
    assert _verify(engine) == []


def test_expiry_never_takes_more_than_is_available(engine: Engine) -> None:
    """A lease holds part of the balance: only the rest expires now; what the lease did not
    spend expires once it is returned."""
    org, acct = _org(engine)
    _pay(engine, org, 10)

    async def hold() -> tuple[CreditManager, Reservation]:
        manager = CreditManager(Database(engine), ttl_s=30, max_lease_nano=4 * USD)
        res = await manager.reserve(acct, 4 * USD, 4 * USD)
        assert res is not None
        return manager, res

    loop = asyncio.new_event_loop()
    try:
        manager, res = loop.run_until_complete(hold())
        with engine.begin() as conn:
            held = balance(conn, acct).held_nano
        assert held == 4 * USD
        assert _settle(engine, LATER) == 6 * USD
        assert _lots(engine, acct) == [("paid", 10, 4, 6)]  # not closed: 4 is held
        assert _verify(engine) == []

        async def finish() -> None:
            await manager.settle(res, 1 * USD, _facts(org))
            await manager.close()
        loop.run_until_complete(finish())
    finally:
        loop.close()
    assert _settle(engine, LATER) == 3 * USD
    assert _lots(engine, acct) == [("paid", 10, 0, 9)]
    assert _expiries(engine, acct) == [6 * USD, 3 * USD]
    with engine.begin() as conn:
        assert balance(conn, acct).balance_nano == 0
    assert _verify(engine) == []


def test_a_lot_used_up_expires_nothing(engine: Engine) -> None:
    org, acct = _org(engine)
    _pay(engine, org, 10)
    _spend(engine, org, acct, 10 * USD)
    assert _settle(engine, LATER) == 0
    assert _lots(engine, acct) == [("paid", 10, 0, 0)]
    assert _expiries(engine, acct) == []
    with engine.begin() as conn:
        assert conn.execute(sa.select(credit_lots.c.expired_at)).scalar() is not None
    assert _verify(engine) == []


def _race(engine: Engine, accounts: list[int], per_account: int) -> None:
    """Settle each account from `per_account` threads at once."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(accounts) * per_account)

    def run(acct: int) -> None:
        try:
            start.wait()
            with engine.begin() as conn:
                settle_account(conn, acct, now=LATER, paid_months=12)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(acct,))
               for acct in accounts for _ in range(per_account)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_the_worker_moves_money_once_when_run_twice_or_concurrently(engine: Engine) -> None:
    accounts = []
    for i in range(3):
        org, acct = _org(engine)
        _pay(engine, org, 10)
        _grant(engine, org, 2, expires_at=NOW + dt.timedelta(days=1))
        _spend(engine, org, acct, (i + 1) * USD)
        accounts.append(acct)
    _race(engine, accounts, per_account=3)
    assert _settle(engine, LATER) == 0  # and once more: nothing left to do
    for i, acct in enumerate(accounts):
        spent = i + 1  # the promotional $2 first, then paid
        assert sum(_expiries(engine, acct)) == (12 - spent) * USD
        assert len(_expiries(engine, acct)) == (2 if spent < 2 else 1)
        with engine.begin() as conn:
            assert balance(conn, acct).balance_nano == 0
    assert _verify(engine) == []


def test_zero_months_turns_paid_expiry_off(engine: Engine) -> None:
    org, acct = _org(engine)
    _pay(engine, org, 10)
    _grant(engine, org, 3, expires_at=NOW + dt.timedelta(days=1))
    with engine.begin() as conn:
        assert [(e.kind, e.remaining_nano) for e in upcoming_expirations(
            conn, acct, paid_months=0)] == [("promotional", 3 * USD)]
    assert _settle(engine, LATER, months=0) == 3 * USD  # the grant's own date still holds
    assert _settle(engine, LATER, months=12) == 0  # dated while off: never expires
    assert _lots(engine, acct) == [("paid", 10, 10, 0), ("promotional", 3, 0, 3)]
    with engine.begin() as conn:
        assert conn.execute(sa.select(credit_lots.c.term_months)
                            .where(credit_lots.c.kind == "paid")).scalar() == 0
    assert _verify(engine) == []


def test_a_paid_lot_dated_earlier_does_not_expire_while_expiry_is_off(engine: Engine) -> None:
    org, _ = _org(engine)
    _pay(engine, org, 10)
    _settle(engine)  # dated: 12 months
    assert _settle(engine, LATER, months=0) == 0
    assert _settle(engine, LATER, months=12) == 10 * USD
    assert _verify(engine) == []


def test_a_refund_takes_back_from_its_own_payment_first(engine: Engine) -> None:
    org, acct = _org(engine)
    _pay(engine, org, 10)
    _pay(engine, org, 10, payment_id="pi_refunded")
    _spend(engine, org, acct, 5 * USD)
    with engine.begin() as conn:
        assert take_back(conn, processor="sandbox", organization_id=org,
                         reference="pi_refunded", total_minor=800, kind="refund",
                         actor="t") == 0
    _settle(engine)
    # Spent from the oldest payment; the refund from its own payment.
    assert _lots(engine, acct) == [("paid", 10, 5, 0), ("paid", 10, 2, 0)]
    with engine.begin() as conn:  # a second refund of the same payment, beyond what it has left
        take_back(conn, processor="sandbox", organization_id=org, reference="pi_refunded",
                  total_minor=1000, kind="refund", actor="t")
    _settle(engine)
    assert _lots(engine, acct) == [("paid", 10, 5, 0), ("paid", 10, 0, 0)]
    assert _verify(engine) == []


def test_a_replayed_credit_keeps_one_lot(engine: Engine) -> None:
    org, acct = _org(engine)
    first = _pay(engine, org, 10, payment_id="pi_twice")
    again = _pay(engine, org, 10, payment_id="pi_twice")
    assert again.id == first.id
    with engine.begin() as conn:
        grant(conn, org, USD, actor="t", reason="r", idempotency_key="g-lots")
        grant(conn, org, USD, actor="t", reason="r", idempotency_key="g-lots")
    assert _lots(engine, acct) == [("paid", 10, 10, 0), ("promotional", 1, 1, 0)]
    assert _verify(engine) == []


def test_upcoming_expirations_count_what_is_not_allocated_yet(engine: Engine) -> None:
    org, acct = _org(engine)
    first = _pay(engine, org, 10)
    _pay(engine, org, 10)
    _spend(engine, org, acct, 4 * USD)
    with engine.begin() as conn:
        shown = upcoming_expirations(conn, acct, paid_months=12)
    assert [e.remaining_nano for e in shown] == [6 * USD, 10 * USD]
    assert shown[0].expires_at == add_months(first.created_at, 12)
    assert _lots(engine, acct)[0] == ("paid", 10, 10, 0)  # read only


def test_verify_reports_lots_out_of_step(engine: Engine) -> None:
    org, acct = _org(engine)
    _pay(engine, org, 10)
    _spend(engine, org, acct, 2 * USD)
    _settle(engine)
    with engine.begin() as conn:  # credit that skipped its lot
        post_transfer(conn, debit_account_id=account_id(conn, GRANTS), credit_account_id=acct,
                      amount_nano=USD, kind="adjustment", actor="t")
        conn.execute(credit_lots.update().values(remaining_nano=credit_lots.c.remaining_nano + 1))
    problems = _verify(engine)
    assert any("credit lots 10000000000 != credits 11000000000" in p for p in problems)
    assert any("lots used 1999999999 != allocated 2000000000" in p for p in problems)


def test_migration_makes_one_lot_of_the_credit_from_before(database_url: str) -> None:
    upgrade(database_url, "0005")
    old = create_engine(database_url)
    with old.begin() as conn:
        conn.execute(organizations.insert().values(id="org_before", name="b", created_at=NOW))
        acct = open_org_account(conn, "org_before")
        post_transfer(conn, debit_account_id=account_id(conn, GRANTS), credit_account_id=acct,
                      amount_nano=5 * USD, kind="grant", actor="t")
        post_transfer(conn, debit_account_id=acct, credit_account_id=account_id(conn, REVENUE),
                      amount_nano=3 * USD, kind="adjustment", actor="t")
    old.dispose()
    upgrade(database_url)
    new = create_engine(database_url)
    try:
        assert _lots(new, acct) == [("paid", 5, 2, 0)]
        assert _verify(new) == []
        _pay(new, "org_before", 10)
        _spend(new, "org_before", acct, 3 * USD)  # the credit from before first (oldest)
        assert _settle(new, LATER) == 9 * USD  # it never expires; the new payment does
        assert _lots(new, acct) == [("paid", 5, 0, 0), ("paid", 10, 0, 9)]
        assert _verify(new) == []
    finally:
        new.dispose()
