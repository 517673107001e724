"""Spend limits as guarded ledger accounts, so they are reserved by the same mechanism as the
balance (leases), exact under concurrency and across processes.

A limit for one period (a key's daily, weekly or monthly spend, on UTC calendar boundaries) is
an account whose credits are the limit, funded from `platform:spend_limits` when the period's
first request arrives. Each settlement that charges the organization also debits the limit
account by the same amount, back to `platform:spend_limits`; its no-overdraft CHECK is the
limit. A new period is a new account, so nothing is ever reset."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from faregate.db.schema import accounts, transfers
from faregate.ledger.accounts import account_id, lock_available
from faregate.ledger.transfers import post_transfer

LIMITS = "platform:spend_limits"
Period = Literal["day", "week", "month"]
PERIODS: tuple[Period, ...] = ("day", "week", "month")


@dataclass(frozen=True, slots=True)
class LimitWindow:
    period: Period
    start: dt.datetime
    end: dt.datetime

    def describe(self) -> str:
        return {"day": "daily", "week": "weekly", "month": "monthly"}[self.period]


def window(period: Period, now: dt.datetime | None = None) -> LimitWindow:
    """The UTC calendar period containing `now` (weeks start on Monday, as ISO weeks do)."""
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    day = dt.datetime(now.year, now.month, now.day, tzinfo=dt.UTC)
    if period == "day":
        return LimitWindow(period, day, day + dt.timedelta(days=1))
    if period == "week":
        start = day - dt.timedelta(days=now.weekday())
        return LimitWindow(period, start, start + dt.timedelta(days=7))
    start = day.replace(day=1)
    end = (start.replace(year=start.year + 1, month=1) if start.month == 12
           else start.replace(month=start.month + 1))
    return LimitWindow(period, start, end)


def key_limit_code(key_id: str, w: LimitWindow) -> str:
    return f"key:{key_id}:{w.period}:{w.start.date().isoformat()}"


def project_budget_code(project_id: str, w: LimitWindow) -> str:
    """A project's monthly budget account (`w` is a month window)."""
    return f"project:{project_id}:month:{w.start.date().isoformat()}"


def ensure_limit_account(conn: sa.Connection, *, code: str, organization_id: str,
                         limit_nano: int) -> int:
    """The guarded account for one limit period, created and funded on first use (idempotent,
    safe when several processes race)."""
    found = conn.execute(sa.select(accounts.c.id).where(accounts.c.code == code)).scalar()
    if found is not None:
        return int(found)
    try:
        with conn.begin_nested():
            acct = int(conn.execute(
                accounts.insert().values(code=code, kind="spend_limit",
                                         organization_id=organization_id, guarded=True)
                .returning(accounts.c.id)).scalar_one())
    except IntegrityError:  # another process made it first
        return int(conn.execute(
            sa.select(accounts.c.id).where(accounts.c.code == code)).scalar_one())
    post_transfer(conn, debit_account_id=account_id(conn, LIMITS), credit_account_id=acct,
                  amount_nano=limit_nano, kind="spend_limit", actor="system",
                  reason="spend limit for the period", idempotency_key=f"limit:{code}")
    return acct


@dataclass(frozen=True, slots=True)
class LimitUse:
    limit_nano: int
    spent_nano: int
    held_nano: int


def _returned(conn: sa.Connection, acct: int) -> int:
    """What a lowered limit gave back to the pool (debits that were not spending)."""
    return int(conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(transfers.c.amount_nano), 0))
        .where(transfers.c.debit_account_id == acct, transfers.c.kind == "spend_limit")
    ).scalar_one())


def limit_use(conn: sa.Connection, code: str) -> LimitUse | None:
    row = conn.execute(sa.select(accounts.c.id, accounts.c.credits_nano, accounts.c.debits_nano,
                                 accounts.c.held_nano).where(accounts.c.code == code)).first()
    if row is None:
        return None
    returned = _returned(conn, int(row.id))
    return LimitUse(int(row.credits_nano) - returned, int(row.debits_nano) - returned,
                    int(row.held_nano))


def resize_limit(conn: sa.Connection, code: str, limit_nano: int, *, actor: str) -> int | None:
    """Move a period's limit account towards a new limit: raised by a transfer from
    `platform:spend_limits`, lowered by a transfer back of what is not spent or held (never
    more, so the no-overdraft CHECK holds). Safe to call again: each call moves only the
    difference that is still there, so a limit lowered while requests held part of it reaches
    its target once they finish. Returns the account's credits after, or None when the period
    has no account yet (it is funded with the new limit when its first request arrives)."""
    acct = conn.execute(sa.select(accounts.c.id).where(accounts.c.code == code)).scalar()
    if acct is None:
        return None
    available = lock_available(conn, int(acct))
    credits = int(conn.execute(sa.select(accounts.c.credits_nano)
                               .where(accounts.c.id == acct)).scalar_one())
    credits -= _returned(conn, int(acct))  # the limit now in force
    pool = account_id(conn, LIMITS)
    if limit_nano > credits:
        post_transfer(conn, debit_account_id=pool, credit_account_id=int(acct),
                      amount_nano=limit_nano - credits, kind="spend_limit", actor=actor,
                      reason="limit raised")
        return limit_nano
    take = min(credits - limit_nano, max(0, available))
    if take > 0:
        post_transfer(conn, debit_account_id=int(acct), credit_account_id=pool,
                      amount_nano=take, kind="spend_limit", actor=actor, reason="limit lowered")
    return credits - take
