"""Settlement: post each finished request's cost, write its usage record, in one transaction
for a whole batch of requests (group commit)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from faregate.db.schema import accounts, leases, transfers, usage_records
from faregate.ledger.accounts import REVENUE, WRITEOFF, account_id, lock_available


@dataclass(slots=True)
class UsageFacts:
    request_id: str
    organization_id: str
    api_key_id: str | None
    endpoint: str
    model: str
    upstream: str | None
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    usage_source: str  # upstream | local | none
    status: str
    streamed: bool
    latency_ms: int


@dataclass(slots=True)
class Settlement:
    """One request's settlement. `from_lease_nano` is the part of the cost the process had
    covered by its lease in memory; the rest is charged from the account's available balance,
    and what that cannot cover is written off."""

    acct_id: int
    lease_id: int | None
    cost_nano: int
    from_lease_nano: int
    usage: UsageFacts
    charged_nano: int = 0
    writeoff_nano: int = 0
    settled_at: dt.datetime | None = None


@dataclass(slots=True)
class BatchOutcome:
    lease_deducted: dict[int, int] = field(default_factory=dict)  # lease id -> amount
    leases_gone: set[int] = field(default_factory=set)


def _deduct_leases(conn: sa.Connection, items: Sequence[Settlement], out: BatchOutcome) -> None:
    per_lease: dict[tuple[int, int], int] = defaultdict(int)
    for item in items:
        if item.lease_id is not None and item.from_lease_nano:
            per_lease[(item.acct_id, item.lease_id)] += item.from_lease_nano
    for (acct, lease_id), amount in sorted(per_lease.items()):
        done = conn.execute(
            leases.update()
            .where(leases.c.id == lease_id, leases.c.status == "open",
                   leases.c.amount_nano >= amount)
            .values(amount_nano=leases.c.amount_nano - amount)
        )
        if done.rowcount == 1:
            conn.execute(accounts.update().where(accounts.c.id == acct).values(
                debits_nano=accounts.c.debits_nano + amount,
                held_nano=accounts.c.held_nano - amount))
            out.lease_deducted[lease_id] = amount
        else:
            out.leases_gone.add(lease_id)


def _charge_rest(conn: sa.Connection, items: Sequence[Settlement], out: BatchOutcome) -> None:
    """Charge what leases did not cover from available balance, capped; write off the rest."""
    by_acct: dict[int, list[Settlement]] = defaultdict(list)
    for item in items:
        covered = item.from_lease_nano if item.lease_id in out.lease_deducted else 0
        item.charged_nano = covered
        if item.cost_nano > covered:
            by_acct[item.acct_id].append(item)
    for acct in sorted(by_acct):
        available = max(0, lock_available(conn, acct))
        taken = 0
        for item in by_acct[acct]:
            want = item.cost_nano - item.charged_nano
            take = min(want, available - taken)
            taken += take
            item.charged_nano += take
        if taken:
            done = conn.execute(
                accounts.update()
                .where(accounts.c.id == acct,
                       accounts.c.credits_nano - accounts.c.debits_nano - accounts.c.held_nano
                       >= taken)
                .values(debits_nano=accounts.c.debits_nano + taken))
            assert done.rowcount == 1, "available balance changed under a row lock"
    for item in items:
        item.writeoff_nano = item.cost_nano - item.charged_nano


def settle_batch(conn: sa.Connection, items: Sequence[Settlement]) -> BatchOutcome:
    """Post a batch of settlements atomically. Accounts are locked in ascending id order, then
    the revenue and write-off accounts, so concurrent batches cannot deadlock."""
    out = BatchOutcome()
    now = dt.datetime.now(dt.UTC)
    if conn.dialect.name != "sqlite":
        conn.execute(sa.select(accounts.c.id)
                     .where(accounts.c.id.in_(sorted({i.acct_id for i in items})))
                     .order_by(accounts.c.id).with_for_update())
    _deduct_leases(conn, items, out)
    _charge_rest(conn, items, out)
    revenue = account_id(conn, REVENUE)
    writeoff = account_id(conn, WRITEOFF)
    charged = sum(i.charged_nano for i in items)
    written_off = sum(i.writeoff_nano for i in items)
    if charged + written_off:
        conn.execute(accounts.update().where(accounts.c.id == revenue)
                     .values(credits_nano=accounts.c.credits_nano + charged + written_off))
    if written_off:
        conn.execute(accounts.update().where(accounts.c.id == writeoff)
                     .values(debits_nano=accounts.c.debits_nano + written_off))
    rows: list[dict[str, object]] = []
    for item in items:
        item.settled_at = now
        rid = item.usage.request_id
        if item.charged_nano:
            rows.append({"debit_account_id": item.acct_id, "credit_account_id": revenue,
                         "amount_nano": item.charged_nano, "kind": "usage", "request_id": rid,
                         "actor": "gateway", "created_at": now})
        if item.writeoff_nano:
            rows.append({"debit_account_id": writeoff, "credit_account_id": revenue,
                         "amount_nano": item.writeoff_nano, "kind": "usage_writeoff",
                         "request_id": rid, "actor": "gateway", "created_at": now})
    if rows:
        conn.execute(transfers.insert(), rows)
    conn.execute(usage_records.insert(), [
        {**_usage_row(item.usage), "account_id": item.acct_id, "cost_nano": item.cost_nano,
         "charged_nano": item.charged_nano, "writeoff_nano": item.writeoff_nano,
         "settled_at": now}
        for item in items
    ])
    return out


def _usage_row(u: UsageFacts) -> dict[str, object]:
    return {"request_id": u.request_id, "organization_id": u.organization_id,
            "api_key_id": u.api_key_id, "endpoint": u.endpoint, "model": u.model,
            "upstream": u.upstream, "prompt_tokens": u.prompt_tokens,
            "cached_tokens": u.cached_tokens, "completion_tokens": u.completion_tokens,
            "usage_source": u.usage_source, "status": u.status, "streamed": u.streamed,
            "latency_ms": u.latency_ms}
