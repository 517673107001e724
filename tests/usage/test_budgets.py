"""Project budgets and alerts on the ledger, on SQLite and PostgreSQL: a budget is a guarded
limit account reserved jointly with the balance, so 50 concurrent requests over three credit
managers (processes) stop exactly at it; owners set, change and clear it (the month's account
follows, an audit entry records it); the alert job emails each crossed threshold once, even
with two workers, and retries when no email could be delivered; the low-balance email goes
out once per fall under the owner's amount."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import socket
from pathlib import Path
from types import EllipsisType

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from faregate.db.runner import Database
from faregate.db.schema import audit_events, billing_states, budget_alerts, memberships, projects
from faregate.errors import InvalidRequest, PermissionDenied
from faregate.identity.projects import (
    BudgetUse,
    Project,
    bring_budget_to_target,
    budget_from_usd,
    budget_use,
    get_default_project,
    update_project,
)
from faregate.identity.users import User, create_user
from faregate.ledger.accounts import account_id, balance, org_account_id
from faregate.ledger.leasing import CreditManager, Reservation, Shortfall
from faregate.ledger.limits import limit_use, project_budget_code, window
from faregate.ledger.settlement import UsageFacts
from faregate.ledger.transfers import grant
from faregate.ledger.verify import verify
from faregate.notify.email import OutboxEmailSender, SmtpEmailSender, read_outbox
from faregate.usage.alerts import (
    send_budget_alerts,
    send_low_balance_alerts,
    set_low_balance,
)
from tests.factories import funded_user

URL = "https://gate.example.com"
COST = 7_000  # nano-USD per request in the concurrency tests


def _org(engine: Engine, funds: int) -> tuple[User, Project]:
    with engine.begin() as conn:
        user = funded_user(conn, funds)
        return user, get_default_project(conn, user.organization_id)


def _set(engine: Engine, user: User, project: Project, *,
         budget: int | EllipsisType | None = ...,
         pcts: list[int] | EllipsisType | None = ...) -> Project:
    with engine.begin() as conn:
        return update_project(conn, user.organization_id, project.id, user_id=user.id,
                              monthly_budget_nano=budget, budget_alert_pcts=pcts)


def _use(engine: Engine, project: Project) -> BudgetUse | None:
    with engine.begin() as conn:
        fresh = conn.execute(sa.select(projects.c.monthly_budget_nano)
                             .where(projects.c.id == project.id)).scalar()
        return budget_use(conn, Project(project.id, project.organization_id, project.name,
                                        project.is_default, project.created_at, None, fresh))


def _facts(user: User, project: Project, n: int) -> UsageFacts:
    return UsageFacts(request_id=f"req_{user.id}_{n}_{random.randrange(10**9)}",
                      organization_id=user.organization_id, api_key_id="key_x",
                      endpoint="embeddings", model="m", upstream="u", prompt_tokens=1,
                      cached_tokens=0, completion_tokens=0, usage_source="upstream",
                      status="ok", streamed=False, latency_ms=1, project_id=project.id)


def _accounts(engine: Engine, user: User, project: Project) -> tuple[int, int]:
    with engine.begin() as conn:
        return (org_account_id(conn, user.organization_id),
                account_id(conn, project_budget_code(project.id, window("month"))))


async def _spend(engine: Engine, user: User, project: Project, requests: int,
                 managers: int = 1, cost: int = COST) -> list[Reservation | Shortfall]:
    """`requests` concurrent requests of a fixed cost (reserved = charged), spread over
    `managers` credit managers as over that many server processes."""
    acct, budget_acct = _accounts(engine, user, project)
    db = Database(engine)
    pool = [CreditManager(db, ttl_s=30, max_lease_nano=10**9) for _ in range(managers)]

    async def one(m: CreditManager, n: int) -> Reservation | Shortfall:
        got = await m.reserve_joint((acct, budget_acct), cost, cost)
        if isinstance(got, Reservation):
            await asyncio.sleep(random.random() / 500)
            await m.settle(got, cost, _facts(user, project, n))
        return got

    try:
        return await asyncio.gather(*(one(pool[i % managers], i) for i in range(requests)))
    finally:
        for m in pool:
            await m.close()


def _charged_to_project(engine: Engine, project: Project) -> int:
    with engine.begin() as conn:
        return int(conn.execute(sa.text(
            "SELECT COALESCE(SUM(charged_nano), 0) FROM usage_records WHERE project_id = :p"),
            {"p": project.id}).scalar_one())


# --- the hard stop -----------------------------------------------------------------------------


def test_fifty_concurrent_requests_stop_exactly_at_the_budget(engine: Engine) -> None:
    """Three processes, 50 requests at once, a budget of 16 requests' cost: exactly 16 are
    served, 34 are refused because of the budget, not the balance.

    Exactness across processes needs every process to hold whole requests' worth: a process
    leases half of what remains, so with a budget of 2^k requests every lease is a whole
    number of requests (with any other budget, up to one request's cost per process can sit
    in a peer's lease while a request is refused, as with a small balance: README, "Several
    processes"), and each process has more demand than the budget, so none is left holding
    budget it has no request for."""
    user, project = _org(engine, 10**9)
    _set(engine, user, project, budget=16 * COST)
    results = asyncio.run(_spend(engine, user, project, 50, managers=3))
    served = [r for r in results if isinstance(r, Reservation)]
    refused = [r for r in results if isinstance(r, Shortfall)]
    assert len(served) == 16 and len(refused) == 34
    assert {r.index for r in refused} == {1}  # the budget ran out, not the balance
    assert _charged_to_project(engine, project) == 16 * COST
    use = _use(engine, project)
    assert use is not None
    assert (use.spent_nano, use.held_nano, use.remaining_nano) == (16 * COST, 0, 0)
    with engine.begin() as conn:
        assert balance(conn, org_account_id(conn, user.organization_id)).debits_nano == \
            16 * COST
        assert verify(conn) == []


def test_one_process_stops_exactly_at_any_budget(engine: Engine) -> None:
    user, project = _org(engine, 10**9)
    _set(engine, user, project, budget=13 * COST + 5)
    results = asyncio.run(_spend(engine, user, project, 50))
    assert sum(isinstance(r, Reservation) for r in results) == 13
    assert _charged_to_project(engine, project) == 13 * COST
    with engine.begin() as conn:
        assert verify(conn) == []


def test_demand_under_the_budget_is_all_served(engine: Engine) -> None:
    user, project = _org(engine, 10**9)
    _set(engine, user, project, budget=100 * COST)
    results = asyncio.run(_spend(engine, user, project, 50, managers=2))
    assert all(isinstance(r, Reservation) for r in results)
    assert _charged_to_project(engine, project) == 50 * COST
    with engine.begin() as conn:
        assert verify(conn) == []


def test_the_balance_binds_when_it_is_smaller_than_the_budget(engine: Engine) -> None:
    user, project = _org(engine, 5 * COST)
    _set(engine, user, project, budget=100 * COST)
    results = asyncio.run(_spend(engine, user, project, 20))
    assert sum(isinstance(r, Reservation) for r in results) == 5
    assert {r.index for r in results if isinstance(r, Shortfall)} == {0}
    with engine.begin() as conn:
        assert verify(conn) == []


def test_verify_catches_a_budget_debit_no_charge_explains(engine: Engine) -> None:
    user, project = _org(engine, 10**9)
    _set(engine, user, project, budget=10 * COST)
    asyncio.run(_spend(engine, user, project, 3))
    _, budget_acct = _accounts(engine, user, project)
    with engine.begin() as conn:
        sid = conn.execute(sa.text("SELECT settlement_id FROM usage_records WHERE project_id = :p"),
                           {"p": project.id}).scalars().first()
        limits = account_id(conn, "platform:spend_limits")
        conn.execute(sa.text(
            "INSERT INTO transfers (debit_account_id, credit_account_id, amount_nano, kind, "
            "settlement_id, actor, created_at) VALUES (:d, :c, 5, 'spend_limit_use', :s, "
            "'test', :at)"), {"d": budget_acct, "c": limits, "s": sid,
                              "at": dt.datetime.now(dt.UTC)})
        conn.execute(sa.text("UPDATE accounts SET debits_nano = debits_nano + 5 WHERE id = :a"),
                     {"a": budget_acct})
        conn.execute(sa.text("UPDATE accounts SET credits_nano = credits_nano + 5 WHERE id = :a"),
                     {"a": limits})
        problems = verify(conn)
    assert len(problems) == 1 and "project's charges" in problems[0], problems


# --- setting, changing and clearing a budget ---------------------------------------------------


def test_owners_set_change_and_clear_a_budget(engine: Engine) -> None:
    user, project = _org(engine, 10**9)
    assert _use(engine, project) is None
    made = _set(engine, user, project, budget=10 * COST, pcts=[90, 25, 25])
    assert made.monthly_budget_nano == 10 * COST and made.budget_alert_pcts == (25, 90)
    code = project_budget_code(project.id, window("month"))
    with engine.begin() as conn:  # the month's account exists at once, funded with the budget
        assert limit_use(conn, code) is not None
        assert limit_use(conn, code).limit_nano == 10 * COST  # type: ignore[union-attr]
    asyncio.run(_spend(engine, user, project, 4))
    _set(engine, user, project, budget=6 * COST)  # lowered: gives back what is free
    with engine.begin() as conn:
        assert limit_use(conn, code).limit_nano == 6 * COST  # type: ignore[union-attr]
    results = asyncio.run(_spend(engine, user, project, 5))
    assert sum(isinstance(r, Reservation) for r in results) == 2
    _set(engine, user, project, budget=20 * COST)  # raised
    results = asyncio.run(_spend(engine, user, project, 5))
    assert all(isinstance(r, Reservation) for r in results)
    use = _use(engine, project)
    assert use is not None
    assert (use.budget_nano, use.spent_nano, use.remaining_nano) == \
        (20 * COST, 11 * COST, 9 * COST)
    cleared = _set(engine, user, project, budget=None, pcts=None)
    assert cleared.monthly_budget_nano is None and cleared.budget_alert_pcts == (50, 80, 100)
    assert _use(engine, project) is None
    with engine.begin() as conn:
        details = [json.loads(d) for d in conn.execute(
            sa.select(audit_events.c.detail).where(
                audit_events.c.action == "project.budget_changed",
                audit_events.c.target == project.id).order_by(audit_events.c.id)).scalars()]
        assert verify(conn) == []
    assert [d["after"]["monthly_budget_usd"] for d in details] == \
        ["0.00007", "0.000042", "0.00014", None]
    assert details[0]["before"] == {"monthly_budget_usd": None, "alert_pcts": [50, 80, 100]}
    assert details[0]["after"]["alert_pcts"] == [25, 90]


@pytest.mark.parametrize("backstop", ["server", "worker"])
def test_a_lowered_budget_reaches_its_target_once_leases_come_back(
        engine: Engine, tmp_path: Path, backstop: str) -> None:
    """A server holds part of the budget in its lease when an owner lowers it: the change takes
    back at once only what is free; the rest comes back when the server notices the change
    (it renews its lease and moves the account) or, for an idle lease, through the alert
    job. From then on the new budget is exact."""
    user, project = _org(engine, 10**9)
    _set(engine, user, project, budget=100 * COST)
    acct, budget_acct = _accounts(engine, user, project)
    code = project_budget_code(project.id, window("month"))
    db = Database(engine)

    async def main() -> int:
        m = CreditManager(db, ttl_s=30, max_lease_nano=10**9)
        try:
            first = await m.reserve_joint((acct, budget_acct), COST, COST)
            assert isinstance(first, Reservation)
            await m.settle(first, COST, _facts(user, project, 0))
            _set(engine, user, project, budget=10 * COST)
            with engine.begin() as conn:
                lowered = limit_use(conn, code)
                assert lowered is not None and lowered.limit_nano > 10 * COST  # held: not yet
            if backstop == "server":
                await m.renew(budget_acct, then=lambda conn: bring_budget_to_target(
                    conn, project.id, actor="gateway"))
            else:
                await m.close()
                m = CreditManager(db, ttl_s=30, max_lease_nano=10**9)
                outbox = OutboxEmailSender(tmp_path / "outbox", "alerts@example.com")
                await send_budget_alerts(db, outbox, public_url=URL)
            with engine.begin() as conn:
                assert limit_use(conn, code).limit_nano == 10 * COST  # type: ignore[union-attr]
            served = 0
            for n in range(1, 15):
                got = await m.reserve_joint((acct, budget_acct), COST, COST)
                if isinstance(got, Reservation):
                    await m.settle(got, COST, _facts(user, project, n))
                    served += 1
            return served
        finally:
            await m.close()

    assert asyncio.run(main()) == 9
    assert _charged_to_project(engine, project) == 10 * COST
    with engine.begin() as conn:
        assert verify(conn) == []


@pytest.mark.parametrize(("budget", "pcts", "param"), [
    (-5, ..., "monthly_budget_usd"),
    (0, ..., "monthly_budget_usd"),
    (..., list(range(1, 12)), "budget_alert_pcts"),
    (..., [0, 50], "budget_alert_pcts"),
    (..., [50, 101], "budget_alert_pcts"),
])
def test_invalid_budgets_are_refused(engine: Engine, budget: int | EllipsisType,
                                     pcts: list[int] | EllipsisType, param: str) -> None:
    user, project = _org(engine, 0)
    with pytest.raises(InvalidRequest) as refused:
        _set(engine, user, project, budget=budget, pcts=pcts)
    assert refused.value.param == param


def test_budget_amounts_parse_exactly() -> None:
    assert budget_from_usd("12.50") == 12_500_000_000
    assert budget_from_usd("0.000000001") == 1
    assert budget_from_usd(3) == 3_000_000_000
    assert budget_from_usd(0.1) == 100_000_000  # a JSON number, as written
    for bad in ("-1", "0", "abc", "1.0000000001", "100000001", 1234567.123456789, float("inf")):
        with pytest.raises(InvalidRequest):
            budget_from_usd(bad)


def test_members_cannot_set_budgets(engine: Engine) -> None:
    owner, project = _org(engine, 0)
    with engine.begin() as conn:
        member = create_user(conn, f"m{random.randrange(10**9)}@example.com")
        conn.execute(memberships.insert().values(
            organization_id=owner.organization_id, user_id=member.id, role="member",
            created_at=dt.datetime.now(dt.UTC)))
    with pytest.raises(PermissionDenied) as refused, engine.begin() as conn:
        update_project(conn, owner.organization_id, project.id, user_id=member.id,
                       monthly_budget_nano=5)
    assert refused.value.code == "owner_required"


# --- alert emails ------------------------------------------------------------------------------


def _mails(outbox: Path, subject_part: str = "") -> list[dict[str, object]]:
    return [m for m in read_outbox(outbox) if subject_part in str(m["subject"])]


def test_each_threshold_is_emailed_once_even_with_two_workers(engine: Engine,
                                                              tmp_path: Path) -> None:
    user, project = _org(engine, 10**9)
    _set(engine, user, project, budget=10 * COST, pcts=[30, 50, 100])
    outbox = tmp_path / "outbox"
    email = OutboxEmailSender(outbox, "Faregate <alerts@example.com>")
    dbs = [Database(engine), Database(engine)]

    async def round_() -> int:
        sent = await asyncio.gather(*(send_budget_alerts(db, email, public_url=URL)
                                      for db in dbs))
        return sum(sent)

    assert asyncio.run(round_()) == 0
    asyncio.run(_spend(engine, user, project, 2))  # 20 %
    assert asyncio.run(round_()) == 0
    asyncio.run(_spend(engine, user, project, 3))  # 50 %: 30 and 50 crossed together
    assert asyncio.run(round_()) == 1
    assert asyncio.run(round_()) == 0
    mails = _mails(outbox)
    assert len(mails) == 1 and mails[0]["to"] == user.email
    assert mails[0]["subject"] == "Faregate: project Default project used 50% of its monthly " \
        "budget"
    assert "$0.000035 of its $0.00007 monthly budget" in str(mails[0]["text"])
    assert f"{URL}/settings/projects/{project.id}" in str(mails[0]["text"])
    asyncio.run(_spend(engine, user, project, 10))  # to the stop
    assert asyncio.run(round_()) == 1
    assert asyncio.run(round_()) == 0
    last = _mails(outbox)[-1]
    assert last["subject"] == "Faregate: project Default project reached its monthly budget"
    assert "project_spend_limit_exceeded" in str(last["text"])
    with engine.begin() as conn:
        rows = conn.execute(sa.select(budget_alerts.c.threshold_pct, budget_alerts.c.period_start)
                            .where(budget_alerts.c.project_id == project.id)).all()
    month = window("month").start.date().isoformat()
    assert sorted(rows) == [(30, month), (50, month), (100, month)]
    # Raised: thresholds no longer crossed are re-armed for the month, the others stay sent.
    _set(engine, user, project, budget=20 * COST)
    with engine.begin() as conn:
        left = conn.execute(sa.select(budget_alerts.c.threshold_pct)
                            .where(budget_alerts.c.project_id == project.id)).scalars().all()
    assert sorted(left) == [30, 50]
    asyncio.run(_spend(engine, user, project, 10))
    assert asyncio.run(round_()) == 1
    assert len(_mails(outbox, "reached its monthly budget")) == 2


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_alert_no_owner_received_is_retried(engine: Engine, tmp_path: Path) -> None:
    user, project = _org(engine, 10**9)
    _set(engine, user, project, budget=10 * COST)
    asyncio.run(_spend(engine, user, project, 5))
    down = SmtpEmailSender("127.0.0.1", _closed_port(), "alerts@example.com", timeout_s=2)
    db = Database(engine)
    assert asyncio.run(send_budget_alerts(db, down, public_url=URL)) == 0
    with engine.begin() as conn:  # not recorded: the next round tries again
        assert conn.execute(sa.select(sa.func.count()).select_from(budget_alerts)).scalar() == 0
    outbox = tmp_path / "outbox"
    up = OutboxEmailSender(outbox, "alerts@example.com")
    assert asyncio.run(send_budget_alerts(db, up, public_url=URL)) == 1
    assert len(_mails(outbox, "50% of its monthly budget")) == 1


def test_low_balance_is_emailed_once_per_fall(engine: Engine, tmp_path: Path) -> None:
    user, project = _org(engine, 10 * COST)
    outbox = tmp_path / "outbox"
    email = OutboxEmailSender(outbox, "alerts@example.com")
    db = Database(engine)

    def run() -> int:
        return asyncio.run(send_low_balance_alerts(db, email, public_url=URL))

    with engine.begin() as conn:
        set_low_balance(conn, user.organization_id, 6 * COST, actor="user:x")
    _set(engine, user, project, budget=10**9)  # the budget is not what binds here
    assert run() == 0
    asyncio.run(_spend(engine, user, project, 4))  # balance 6: not under
    assert run() == 0
    asyncio.run(_spend(engine, user, project, 1))  # 5: under
    assert run() == 1
    assert run() == 0
    asyncio.run(_spend(engine, user, project, 1))  # further down: still the same fall
    assert run() == 0
    mails = _mails(outbox, "balance low")
    assert len(mails) == 1 and mails[0]["subject"] == "Faregate balance low: $0.000035 left"
    assert "under the $0.000042 you chose" in str(mails[0]["text"])
    with engine.begin() as conn:
        grant(conn, user.organization_id, 10 * COST, actor="t", reason="top-up")  # 14: over
    assert run() == 0
    with engine.begin() as conn:
        assert conn.execute(sa.select(billing_states.c.low_balance_alerted_at).where(
            billing_states.c.organization_id == user.organization_id)).scalar() is None
    asyncio.run(_spend(engine, user, project, 9))  # 5 again: a new fall
    assert run() == 1
    assert len(_mails(outbox, "balance low")) == 2
    # Turned off: no more emails, whatever the balance.
    with engine.begin() as conn:
        set_low_balance(conn, user.organization_id, None, actor="user:x")
        grant(conn, user.organization_id, COST, actor="t", reason="t")
    asyncio.run(_spend(engine, user, project, 3))
    assert run() == 0
    with engine.begin() as conn:
        assert verify(conn) == []
