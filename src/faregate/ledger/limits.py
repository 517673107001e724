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

from faregate.db.schema import accounts
from faregate.ledger.accounts import account_id
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


def limit_use(conn: sa.Connection, code: str) -> LimitUse | None:
    row = conn.execute(sa.select(accounts.c.credits_nano, accounts.c.debits_nano,
                                 accounts.c.held_nano).where(accounts.c.code == code)).first()
    if row is None:
        return None
    return LimitUse(int(row.credits_nano), int(row.debits_nano), int(row.held_nano))
