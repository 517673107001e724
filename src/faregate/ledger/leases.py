"""Leases: credit a process holds against an account, so requests can reserve in memory.

Every function runs inside the caller's transaction. Expiries are on the database clock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from faregate.db.engine import now_ms_expr
from faregate.db.schema import accounts, leases
from faregate.ledger.accounts import lock_available


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    lease_id: int
    granted_nano: int


def _take_held(conn: sa.Connection, acct_id: int, amount: int) -> bool:
    """Move `amount` from available to held, refusing if the account cannot cover it."""
    result = conn.execute(
        accounts.update()
        .where(accounts.c.id == acct_id)
        .where(accounts.c.credits_nano - accounts.c.debits_nano - accounts.c.held_nano >= amount)
        .values(held_nano=accounts.c.held_nano + amount)
    )
    return result.rowcount == 1


def _grant_size(available: int, deficit: int, ask: int, share_divisor: int) -> int:
    """Take what is needed, and beyond that at most a share of what remains, so that several
    processes leasing against one small balance do not starve each other."""
    if available <= 0:
        return 0
    share = max(deficit, available // share_divisor)
    return min(available, ask, share)


def acquire(
    conn: sa.Connection, *, acct_id: int, lease_id: int | None, owner: str, deficit_nano: int,
    ask_nano: int, ttl_ms: int, share_divisor: int = 2,
) -> LeaseGrant | None:
    """Open a lease (lease_id None) or grow an open one by up to `ask_nano`.

    Returns the amount granted (possibly less than the deficit, possibly 0); None when there
    was nothing to open a new lease with. Raises LeaseGone when the given lease is no longer
    open (the caller must open a new one)."""
    available = lock_available(conn, acct_id)
    granted = _grant_size(available, deficit_nano, ask_nano, share_divisor)
    if granted > 0 and not _take_held(conn, acct_id, granted):
        granted = 0
    now = now_ms_expr(conn.dialect)
    if lease_id is None:
        if granted == 0:
            return None
        new_id = conn.execute(
            leases.insert()
            .values(account_id=acct_id, owner=owner, amount_nano=granted, status="open",
                    created_at_ms=now, expires_at_ms=now + ttl_ms)
            .returning(leases.c.id)
        ).scalar_one()
        return LeaseGrant(int(new_id), granted)
    grown = conn.execute(
        leases.update()
        .where(leases.c.id == lease_id, leases.c.status == "open")
        .values(amount_nano=leases.c.amount_nano + granted, expires_at_ms=now + ttl_ms)
    )
    if grown.rowcount != 1:
        raise LeaseGone(lease_id)
    return LeaseGrant(lease_id, granted)


class LeaseGone(Exception):
    """The lease was voided (it lapsed) or closed; the transaction must roll back."""

    def __init__(self, lease_id: int) -> None:
        super().__init__(f"lease {lease_id} is not open")
        self.lease_id = lease_id


def release(conn: sa.Connection, *, lease_id: int, acct_id: int, amount_nano: int,
            close: bool) -> bool:
    """Return `amount_nano` of an open lease to the account; close the lease if asked."""
    values: dict[str, object] = {"amount_nano": leases.c.amount_nano - amount_nano}
    if close:
        values.update(status="closed", closed_at_ms=now_ms_expr(conn.dialect))
    result = conn.execute(
        leases.update()
        .where(leases.c.id == lease_id, leases.c.status == "open",
               leases.c.amount_nano >= amount_nano)
        .values(**values)
    )
    if result.rowcount != 1:
        return False
    if amount_nano:
        conn.execute(accounts.update().where(accounts.c.id == acct_id)
                     .values(held_nano=accounts.c.held_nano - amount_nano))
    return True


def holders(conn: sa.Connection, acct_id: int, owner: str) -> dict[str, int]:
    """What the live leases of other processes hold against the account, by owner."""
    rows = conn.execute(
        sa.select(leases.c.owner, sa.func.sum(leases.c.amount_nano))
        .where(leases.c.account_id == acct_id, leases.c.status == "open",
               leases.c.owner != owner, leases.c.expires_at_ms > now_ms_expr(conn.dialect))
        .group_by(leases.c.owner))
    return {str(o): int(n) for o, n in rows if n > 0}


def heartbeat(conn: sa.Connection, lease_ids: Sequence[int], ttl_ms: int) -> set[int]:
    """Push the expiry of open leases forward; return the ids that are still open."""
    if not lease_ids:
        return set()
    now = now_ms_expr(conn.dialect)
    rows = conn.execute(
        leases.update()
        .where(leases.c.id.in_(list(lease_ids)), leases.c.status == "open")
        .values(expires_at_ms=now + ttl_ms)
        .returning(leases.c.id)
    ).scalars()
    return {int(r) for r in rows}


def void_lapsed(conn: sa.Connection, *, limit: int = 500) -> int:
    """Void open leases whose expiry has passed, returning their amounts to the accounts.

    Safe to run in any number of processes at once: each void is a conditional update."""
    now = now_ms_expr(conn.dialect)
    lapsed = conn.execute(
        sa.select(leases.c.id, leases.c.account_id, leases.c.amount_nano)
        .where(leases.c.status == "open", leases.c.expires_at_ms < now)
        .order_by(leases.c.account_id)
        .limit(limit)
    ).all()
    voided = 0
    for row in lapsed:
        done = conn.execute(
            leases.update()
            .where(leases.c.id == row.id, leases.c.status == "open",
                   leases.c.expires_at_ms < now)
            .values(status="voided", closed_at_ms=now)
            .returning(leases.c.amount_nano)
        ).scalar()
        if done is None:
            continue
        voided += 1
        if int(done):
            conn.execute(accounts.update().where(accounts.c.id == row.account_id)
                         .values(held_nano=accounts.c.held_nano - int(done)))
    return voided
