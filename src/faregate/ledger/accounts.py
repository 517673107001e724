"""Accounts: one credit account per organization, plus the platform's system accounts."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from faregate.db.schema import accounts, leases
from faregate.errors import NotFound

GRANTS = "platform:grants"
REVENUE = "platform:revenue"
WRITEOFF = "platform:writeoff"


def org_account_code(organization_id: str) -> str:
    return f"org:{organization_id}:credit"


@dataclass(frozen=True, slots=True)
class Balance:
    credits_nano: int
    debits_nano: int
    held_nano: int

    @property
    def balance_nano(self) -> int:
        return self.credits_nano - self.debits_nano

    @property
    def available_nano(self) -> int:
        return self.credits_nano - self.debits_nano - self.held_nano


def open_org_account(conn: sa.Connection, organization_id: str) -> int:
    """Create the organization's guarded credit account; return its id."""
    result = conn.execute(
        accounts.insert()
        .values(code=org_account_code(organization_id), kind="org_credit",
                organization_id=organization_id, guarded=True)
        .returning(accounts.c.id)
    )
    return int(result.scalar_one())


def account_id(conn: sa.Connection, code: str) -> int:
    found = conn.execute(sa.select(accounts.c.id).where(accounts.c.code == code)).scalar()
    if found is None:
        raise NotFound(f"no ledger account {code!r}")
    return int(found)


def org_account_id(conn: sa.Connection, organization_id: str) -> int:
    return account_id(conn, org_account_code(organization_id))


def balance(conn: sa.Connection, acct_id: int) -> Balance:
    row = conn.execute(
        sa.select(accounts.c.credits_nano, accounts.c.debits_nano, accounts.c.held_nano)
        .where(accounts.c.id == acct_id)
    ).one()
    return Balance(int(row.credits_nano), int(row.debits_nano), int(row.held_nano))


def open_leases_total(conn: sa.Connection, acct_id: int) -> int:
    total = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(leases.c.amount_nano), 0))
        .where(leases.c.account_id == acct_id, leases.c.status == "open")
    ).scalar_one()
    return int(total)


def lock_available(conn: sa.Connection, acct_id: int) -> int:
    """Read credits - debits - held with the row locked until the transaction ends (PostgreSQL;
    SQLite's IMMEDIATE transaction already holds the database write lock)."""
    stmt = sa.select(
        accounts.c.credits_nano - accounts.c.debits_nano - accounts.c.held_nano
    ).where(accounts.c.id == acct_id)
    if conn.dialect.name != "sqlite":
        stmt = stmt.with_for_update()
    return int(conn.execute(stmt).scalar_one())
