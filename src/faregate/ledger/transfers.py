"""Posting transfers between accounts. Transfers are never edited; a correction is a new one."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from faregate.db.schema import accounts, transfers
from faregate.errors import InvalidRequest, Refused
from faregate.ledger.accounts import GRANTS, account_id, org_account_id
from faregate.ledger.lots import open_lot


@dataclass(frozen=True, slots=True)
class Transfer:
    id: int
    debit_account_id: int
    credit_account_id: int
    amount_nano: int
    kind: str
    actor: str
    reason: str | None
    idempotency_key: str | None
    created_at: dt.datetime


def _row_to_transfer(row: sa.Row[tuple[object, ...]]) -> Transfer:
    created = row.created_at
    assert isinstance(created, dt.datetime)
    if created.tzinfo is None:
        created = created.replace(tzinfo=dt.UTC)
    return Transfer(int(row.id), int(row.debit_account_id), int(row.credit_account_id),
                    int(row.amount_nano), str(row.kind), str(row.actor),
                    row.reason if isinstance(row.reason, str) else None,
                    row.idempotency_key if isinstance(row.idempotency_key, str) else None, created)


def _existing(conn: sa.Connection, idempotency_key: str) -> Transfer | None:
    row = conn.execute(
        sa.select(transfers).where(transfers.c.idempotency_key == idempotency_key)
    ).first()
    return _row_to_transfer(row) if row is not None else None


def post_transfer(
    conn: sa.Connection,
    *,
    debit_account_id: int,
    credit_account_id: int,
    amount_nano: int,
    kind: str,
    actor: str,
    reason: str | None = None,
    idempotency_key: str | None = None,
    at: dt.datetime | None = None,
) -> Transfer:
    """Move `amount_nano` from the debit account to the credit account.

    A guarded debit account must have the amount available (credits - debits - held); the
    conditional UPDATE refuses otherwise and the CHECK constraint backs it. With an idempotency
    key, repeating the same transfer returns the first one; reusing the key for a different
    transfer is refused."""
    if amount_nano <= 0:
        raise InvalidRequest("amount must be positive", param="amount")
    if idempotency_key is not None:
        prior = _existing(conn, idempotency_key)
        if prior is not None:
            return _check_same(prior, debit_account_id, credit_account_id, amount_nano, kind)
    at = at or dt.datetime.now(dt.UTC)
    debit = conn.execute(
        accounts.update()
        .where(accounts.c.id == debit_account_id)
        .where(sa.or_(sa.not_(accounts.c.guarded),
                      accounts.c.credits_nano - accounts.c.debits_nano - accounts.c.held_nano
                      >= amount_nano))
        .values(debits_nano=accounts.c.debits_nano + amount_nano)
    )
    if debit.rowcount != 1:
        raise Refused("insufficient available balance for this transfer")
    conn.execute(accounts.update().where(accounts.c.id == credit_account_id)
                 .values(credits_nano=accounts.c.credits_nano + amount_nano))
    try:
        with conn.begin_nested():
            new_id = conn.execute(
                transfers.insert().values(
                    debit_account_id=debit_account_id, credit_account_id=credit_account_id,
                    amount_nano=amount_nano, kind=kind, actor=actor, reason=reason,
                    idempotency_key=idempotency_key, created_at=at,
                ).returning(transfers.c.id)
            ).scalar_one()
    except IntegrityError:
        # A concurrent transfer took the idempotency key first: undo ours by failing the caller.
        raise Refused("idempotency key was used concurrently; retry") from None
    return Transfer(int(new_id), debit_account_id, credit_account_id, amount_nano, kind, actor,
                    reason, idempotency_key, at)


def _check_same(prior: Transfer, debit: int, credit: int, amount: int, kind: str) -> Transfer:
    if (prior.debit_account_id, prior.credit_account_id, prior.amount_nano, prior.kind) != (
        debit, credit, amount, kind
    ):
        raise Refused("idempotency key already used for a different transfer")
    return prior


def grant(conn: sa.Connection, organization_id: str, amount_nano: int, *, actor: str,
          reason: str, idempotency_key: str | None = None,
          expires_at: dt.datetime | None = None) -> Transfer:
    """Promotional/operator credit: from the platform's grants account to the organization.
    It is used before paid credit, and expires at `expires_at` if given (else never)."""
    transfer = post_transfer(
        conn, debit_account_id=account_id(conn, GRANTS),
        credit_account_id=org_account_id(conn, organization_id), amount_nano=amount_nano,
        kind="grant", actor=actor, reason=reason, idempotency_key=idempotency_key)
    open_lot(conn, transfer, kind="promotional", expires_at=expires_at)
    return transfer
