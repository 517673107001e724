"""Settlement: post each finished request's cost, write its usage record, in one transaction
for a whole batch of requests (group commit).

This runs once per batch on the hot path, so its statements are plain SQL sent to the driver
(no statement compilation), and their number does not grow with the batch: one statement
deducts every lease, one posts every account, two multi-row inserts write the transfers and
the usage records.

Usage is posted as one transfer per account per batch (and one write-off transfer per batch),
tagged with the batch's settlement id; each usage record carries that id and its own charge,
so every transfer is the exact sum of the usage records behind it (`ledger verify` checks)."""

from __future__ import annotations

import datetime as dt
import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from faregate.db.schema import accounts
from faregate.ledger.accounts import REVENUE, WRITEOFF, account_id, lock_available
from faregate.ledger.limits import LIMITS


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
    project_id: str | None = None


@dataclass(frozen=True, slots=True)
class LimitPart:
    """A spend-limit account a request counts against, and the lease it reserved from."""

    acct_id: int
    lease_id: int


@dataclass(slots=True)
class Settlement:
    """One request's settlement. `from_lease_nano` is the part of the cost the process had
    covered by its lease in memory; the rest is charged from the account's available balance,
    and what that cannot cover is written off. A request under spend limits is charged no
    more than every limit account can also cover, and each limit is debited the same charge;
    `from_lease_nano` is then covered by each of the limits' leases too."""

    acct_id: int
    lease_id: int | None
    cost_nano: int
    from_lease_nano: int
    usage: UsageFacts
    limits: tuple[LimitPart, ...] = ()
    charged_nano: int = 0
    writeoff_nano: int = 0
    settled_at: dt.datetime | None = None


@dataclass(slots=True)
class BatchOutcome:
    lease_deducted: dict[int, int] = field(default_factory=dict)  # lease id -> amount
    leases_gone: set[int] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class SystemAccounts:
    revenue: int
    writeoff: int
    limits: int

    @classmethod
    def load(cls, conn: sa.Connection) -> SystemAccounts:
        return cls(account_id(conn, REVENUE), account_id(conn, WRITEOFF),
                   account_id(conn, LIMITS))


# A shared advisory lock held by every transaction that inserts usage records (PostgreSQL).
USAGE_LOCK_KEY = 0x6661726567617465  # "faregate"
USAGE_WRITERS_LOCK = f"SELECT pg_advisory_xact_lock_shared({USAGE_LOCK_KEY})"


def _values(n: int) -> str:
    return ", ".join(["(CAST(? AS BIGINT), CAST(? AS BIGINT))"] * n)


_DEDUCT_LEASES = (
    "WITH v(id, amount) AS (VALUES {values}) "
    "UPDATE leases SET amount_nano = leases.amount_nano - v.amount FROM v "
    "WHERE leases.id = v.id AND leases.status = 'open' AND leases.amount_nano >= v.amount "
    "RETURNING leases.id")
_POST_LEASED = (
    "WITH v(id, amount) AS (VALUES {values}) "
    "UPDATE accounts SET debits_nano = accounts.debits_nano + v.amount, "
    "held_nano = accounts.held_nano - v.amount FROM v WHERE accounts.id = v.id")
_CREDIT = "UPDATE accounts SET credits_nano = credits_nano + ? WHERE id = ?"
_DEBIT = "UPDATE accounts SET debits_nano = debits_nano + ? WHERE id = ?"
_INSERT_TRANSFER = (
    "INSERT INTO transfers (debit_account_id, credit_account_id, amount_nano, kind, "
    "settlement_id, actor, created_at) VALUES (?, ?, ?, ?, ?, 'gateway', ?)")
_INSERT_USAGE = (
    "INSERT INTO usage_records (request_id, organization_id, api_key_id, account_id, endpoint, "
    "model, upstream, prompt_tokens, cached_tokens, completion_tokens, usage_source, status, "
    "streamed, latency_ms, cost_nano, charged_nano, writeoff_nano, settlement_id, settled_at, "
    "project_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def _sql(conn: sa.Connection, statement: str) -> str:
    """Our statements use qmark placeholders; psycopg wants %s."""
    return statement if conn.dialect.paramstyle == "qmark" else statement.replace("?", "%s")


def _deduct_leases(conn: sa.Connection, items: Sequence[Settlement], out: BatchOutcome) -> None:
    per_lease: dict[int, int] = defaultdict(int)
    acct_of: dict[int, int] = {}
    for item in items:
        if item.lease_id is not None and item.from_lease_nano:
            per_lease[item.lease_id] += item.from_lease_nano
            acct_of[item.lease_id] = item.acct_id
            for part in item.limits:
                per_lease[part.lease_id] += item.from_lease_nano
                acct_of[part.lease_id] = part.acct_id
    if not per_lease:
        return
    ordered = sorted(per_lease.items())
    params = tuple(x for pair in ordered for x in pair)
    done = {int(r[0]) for r in conn.exec_driver_sql(
        _sql(conn, _DEDUCT_LEASES.format(values=_values(len(ordered)))), params).all()}
    per_acct: dict[int, int] = defaultdict(int)
    for lease_id, amount in ordered:
        if lease_id in done:
            out.lease_deducted[lease_id] = amount
            per_acct[acct_of[lease_id]] += amount
        else:
            out.leases_gone.add(lease_id)
    if per_acct:
        rows = sorted(per_acct.items())
        conn.exec_driver_sql(_sql(conn, _POST_LEASED.format(values=_values(len(rows)))),
                             tuple(x for pair in rows for x in pair))


def _debit_available(conn: sa.Connection, acct: int, amount: int) -> None:
    """Debit what the row lock guarantees is available (credits - debits - held)."""
    done = conn.execute(
        accounts.update()
        .where(accounts.c.id == acct,
               accounts.c.credits_nano - accounts.c.debits_nano - accounts.c.held_nano >= amount)
        .values(debits_nano=accounts.c.debits_nano + amount))
    assert done.rowcount == 1, "available balance changed under a row lock"


def _charge_rest(conn: sa.Connection, items: Sequence[Settlement], out: BatchOutcome) -> None:
    """Charge what leases did not cover from available balance, capped; write off the rest."""
    by_acct: dict[int, list[Settlement]] = defaultdict(list)
    limited: list[Settlement] = []
    for item in items:
        covered = item.from_lease_nano if item.lease_id in out.lease_deducted else 0
        item.charged_nano = covered
        if item.limits:
            limited.append(item)
        elif item.cost_nano > covered:
            by_acct[item.acct_id].append(item)
    if limited:
        _charge_limited(conn, limited, out)
    for acct in sorted(by_acct):
        available = max(0, lock_available(conn, acct))
        taken = 0
        for item in by_acct[acct]:
            want = item.cost_nano - item.charged_nano
            take = min(want, available - taken)
            taken += take
            item.charged_nano += take
        if taken:
            _debit_available(conn, acct, taken)
    for item in items:
        item.writeoff_nano = item.cost_nano - item.charged_nano


def _charge_limited(conn: sa.Connection, items: Sequence[Settlement], out: BatchOutcome) -> None:
    """Requests under spend limits: each is charged the most that its balance and every one of
    its limit accounts can cover (what their leases covered, plus available room), and every
    one of those accounts is debited exactly that charge."""
    available: dict[int, int] = {}
    net: dict[int, int] = defaultdict(int)  # debits still to add (+) or give back (-)

    def room(acct: int) -> int:
        if acct not in available:
            available[acct] = max(0, lock_available(conn, acct))
        return available[acct] - max(0, net[acct])

    for item in items:
        parts = [(item.acct_id, item.lease_id), *((p.acct_id, p.lease_id) for p in item.limits)]
        covered = [item.from_lease_nano if lease in out.lease_deducted else 0
                   for _, lease in parts]
        charged = item.cost_nano
        for (acct, _), cov in zip(parts, covered, strict=True):
            if cov < charged:
                charged = min(charged, cov + room(acct))
        for (acct, _), cov in zip(parts, covered, strict=True):
            net[acct] += charged - cov
        item.charged_nano = charged
    for acct, delta in sorted(net.items()):
        if delta > 0:
            _debit_available(conn, acct, delta)
        elif delta < 0:  # a lease covered more than another account of the request could
            conn.execute(accounts.update().where(accounts.c.id == acct)
                         .values(debits_nano=accounts.c.debits_nano + delta))


def settle_batch(conn: sa.Connection, items: Sequence[Settlement],
                 system: SystemAccounts) -> BatchOutcome:
    """Post a batch of settlements atomically. On PostgreSQL the organizations' accounts are
    locked in ascending id order first, then the revenue and write-off accounts, so concurrent
    batches cannot deadlock."""
    out = BatchOutcome()
    now = dt.datetime.now(dt.UTC)
    if conn.dialect.name != "sqlite":
        # Before this batch takes usage record ids: the rollup worker waits for holders of
        # this lock to end before it trusts that no lower id can still commit.
        conn.exec_driver_sql(USAGE_WRITERS_LOCK)
        ids = {i.acct_id for i in items} | {p.acct_id for i in items for p in i.limits}
        conn.execute(sa.select(accounts.c.id).where(accounts.c.id.in_(sorted(ids)))
                     .order_by(accounts.c.id).with_for_update())
    _deduct_leases(conn, items, out)
    _charge_rest(conn, items, out)
    charged = sum(i.charged_nano for i in items)
    written_off = sum(i.writeoff_nano for i in items)
    if charged + written_off:
        conn.exec_driver_sql(_sql(conn, _CREDIT), (charged + written_off, system.revenue))
    if written_off:
        conn.exec_driver_sql(_sql(conn, _DEBIT), (written_off, system.writeoff))
    stamp: object = now
    if conn.dialect.name == "sqlite":  # the text form SQLAlchemy's SQLite DateTime uses
        stamp = now.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    settlement_id = "stl_" + secrets.token_hex(12)
    charged_by_acct: dict[int, int] = defaultdict(int)
    charged_by_limit: dict[int, int] = defaultdict(int)
    usage_rows: list[tuple[object, ...]] = []
    for item in items:
        item.settled_at = now
        charged_by_acct[item.acct_id] += item.charged_nano
        for part in item.limits:
            charged_by_limit[part.acct_id] += item.charged_nano
        u = item.usage
        usage_rows.append((u.request_id, u.organization_id, u.api_key_id, item.acct_id,
                           u.endpoint, u.model, u.upstream, u.prompt_tokens, u.cached_tokens,
                           u.completion_tokens, u.usage_source, u.status, u.streamed,
                           u.latency_ms, item.cost_nano, item.charged_nano, item.writeoff_nano,
                           settlement_id, stamp, u.project_id))
    transfer_rows: list[tuple[object, ...]] = [
        (acct, system.revenue, amount, "usage", settlement_id, stamp)
        for acct, amount in sorted(charged_by_acct.items()) if amount]
    if written_off:
        transfer_rows.append((system.writeoff, system.revenue, written_off, "usage_writeoff",
                              settlement_id, stamp))
    limit_total = 0
    for acct, amount in sorted(charged_by_limit.items()):
        if amount:
            limit_total += amount
            transfer_rows.append((acct, system.limits, amount, "spend_limit_use", settlement_id,
                                  stamp))
    if limit_total:
        conn.exec_driver_sql(_sql(conn, _CREDIT), (limit_total, system.limits))
    if transfer_rows:
        conn.exec_driver_sql(_sql(conn, _INSERT_TRANSFER), transfer_rows)
    conn.exec_driver_sql(_sql(conn, _INSERT_USAGE), usage_rows)
    return out
