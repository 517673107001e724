"""Settlement: post each finished request's cost, write its usage record, in one transaction
for a whole batch of requests (group commit).

This runs once per batch on the hot path, so its statements are plain SQL sent to the driver
(no statement compilation), and their number does not grow with the batch. On PostgreSQL the
common batch, every cost covered by its lease in memory, is one statement in autocommit mode
on the event loop (`settle_leased_pg`: one round trip, no BEGIN or COMMIT, no hand-off to a
database thread); any other batch, or one whose lease
check fails, is three round trips besides BEGIN and COMMIT (`settle_batch`). Each statement
is a fixed text (prepared by the driver after a few uses) that takes its rows as one JSON
parameter. The per-batch cost matters: several processes mean more, smaller batches
(bench/README, "Two workers vs one"). SQLite takes the same steps as separate statements.

Usage is posted as one transfer per account per batch (and one write-off transfer per batch),
tagged with the batch's settlement id; each usage record carries that id and its own charge,
so every transfer is the exact sum of the usage records behind it (`ledger verify` checks)."""

from __future__ import annotations

import datetime as dt
import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa

from faregate.db.schema import accounts, usage_records
from faregate.db.statement import StatementConnection
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


# PostgreSQL: the shared lock and the accounts' row locks (ascending id) in one statement.
_LOCK_PG = (
    f"SELECT a.id FROM (SELECT pg_advisory_xact_lock_shared({USAGE_LOCK_KEY})) AS l, "
    "accounts AS a WHERE a.id = ANY(%s::bigint[]) ORDER BY a.id FOR UPDATE OF a")
# PostgreSQL: deduct every lease and post what was deducted to its account, in one statement;
# returns the leases that were still open and held enough.
_DEDUCT_AND_POST_PG = (
    "WITH v AS (SELECT * FROM json_to_recordset(CAST(%s AS json)) "
    "AS v(lease_id bigint, acct_id bigint, amount bigint)), "
    "d AS (UPDATE leases SET amount_nano = leases.amount_nano - v.amount FROM v "
    "WHERE leases.id = v.lease_id AND leases.status = 'open' AND leases.amount_nano >= v.amount "
    "RETURNING leases.id, v.acct_id, v.amount), "
    "s AS (SELECT acct_id, CAST(sum(amount) AS BIGINT) AS amount FROM d GROUP BY acct_id), "
    "p AS (UPDATE accounts SET debits_nano = accounts.debits_nano + s.amount, "
    "held_nano = accounts.held_nano - s.amount FROM s WHERE accounts.id = s.acct_id) "
    "SELECT id FROM d")
# PostgreSQL: the system accounts' postings, the transfers and the usage records, in one
# statement (data-modifying WITH clauses always run to completion).
_USAGE_COLUMNS = (
    "request_id", "organization_id", "api_key_id", "account_id", "endpoint", "model",
    "upstream", "prompt_tokens", "cached_tokens", "completion_tokens", "usage_source", "status",
    "streamed", "latency_ms", "cost_nano", "charged_nano", "writeoff_nano", "project_id")
_POST_PG = (
    "WITH c AS (UPDATE accounts SET credits_nano = accounts.credits_nano + v.credit, "
    "debits_nano = accounts.debits_nano + v.debit "
    "FROM json_to_recordset(CAST(%s AS json)) AS v(id bigint, credit bigint, debit bigint) "
    "WHERE accounts.id = v.id), "
    "t AS (INSERT INTO transfers (debit_account_id, credit_account_id, amount_nano, kind, "
    "settlement_id, actor, created_at) SELECT t.d, t.c, t.a, t.k, %s, 'gateway', %s "
    "FROM json_to_recordset(CAST(%s AS json)) AS t(d bigint, c bigint, a bigint, k text)) "
    f"INSERT INTO usage_records ({', '.join(_USAGE_COLUMNS)}, settlement_id, settled_at) "
    f"SELECT {', '.join('u.' + c for c in _USAGE_COLUMNS)}, %s, %s "
    "FROM json_populate_recordset(NULL::usage_records, CAST(%s AS json)) AS u")


# PostgreSQL, the common batch (settle_leased_pg): _LOCK_PG's locks, then the leases' row
# locks (ascending id) with the check that each is open and holds what is deducted; every
# change below runs only when all of them passed (`ok`), else the statement changes nothing.
# The main query reads `ok`, so the locks and the check come first; the data-modifying WITH
# clauses run to completion after it.
_SETTLE_LEASED_PG = (
    "WITH lk AS (SELECT a.id FROM "
    f"(SELECT pg_advisory_xact_lock_shared({USAGE_LOCK_KEY})) AS l, accounts AS a "
    "WHERE a.id = ANY(%s::bigint[]) ORDER BY a.id FOR UPDATE OF a), "
    "v AS (SELECT * FROM json_to_recordset(CAST(%s AS json)) "
    "AS v(lease_id bigint, acct_id bigint, amount bigint)), "
    "lc AS (SELECT leases.id FROM leases JOIN v ON leases.id = v.lease_id "
    "WHERE leases.status = 'open' AND leases.amount_nano >= v.amount "
    "ORDER BY leases.id FOR UPDATE OF leases), "
    "ok AS (SELECT (SELECT count(*) FROM lk) >= 0 "
    "AND (SELECT count(*) FROM lc) = (SELECT count(*) FROM v) AS ok), "
    "d AS (UPDATE leases SET amount_nano = leases.amount_nano - v.amount FROM v "
    "WHERE leases.id = v.lease_id AND (SELECT ok FROM ok) RETURNING v.acct_id, v.amount), "
    "s AS (SELECT acct_id, CAST(sum(amount) AS BIGINT) AS amount FROM d GROUP BY acct_id), "
    "p AS (UPDATE accounts SET debits_nano = accounts.debits_nano + s.amount, "
    "held_nano = accounts.held_nano - s.amount FROM s WHERE accounts.id = s.acct_id), "
    "c AS (UPDATE accounts SET credits_nano = accounts.credits_nano + v.credit, "
    "debits_nano = accounts.debits_nano + v.debit "
    "FROM json_to_recordset(CAST(%s AS json)) AS v(id bigint, credit bigint, debit bigint) "
    "WHERE accounts.id = v.id AND (SELECT ok FROM ok)), "
    "t AS (INSERT INTO transfers (debit_account_id, credit_account_id, amount_nano, kind, "
    "settlement_id, actor, created_at) SELECT t.d, t.c, t.a, t.k, %s, 'gateway', %s "
    "FROM json_to_recordset(CAST(%s AS json)) AS t(d bigint, c bigint, a bigint, k text) "
    "WHERE (SELECT ok FROM ok)), "
    f"u AS (INSERT INTO usage_records ({', '.join(_USAGE_COLUMNS)}, settlement_id, settled_at) "
    f"SELECT {', '.join('u.' + c for c in _USAGE_COLUMNS)}, %s, %s "
    "FROM json_populate_recordset(NULL::usage_records, CAST(%s AS json)) AS u "
    "WHERE (SELECT ok FROM ok)) "
    "SELECT ok FROM ok")


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
    f"INSERT INTO usage_records ({', '.join(_USAGE_COLUMNS)}, settlement_id, settled_at) "
    f"VALUES ({', '.join(['?'] * (len(_USAGE_COLUMNS) + 2))})")


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
    if conn.dialect.name != "sqlite":  # deducts and posts in one statement
        done = {int(r[0]) for r in _pg(conn, _DEDUCT_AND_POST_PG, (_json([
            {"lease_id": lease_id, "acct_id": acct_of[lease_id], "amount": amount}
            for lease_id, amount in ordered]),))}
    else:
        done = {int(r[0]) for r in conn.exec_driver_sql(
            _DEDUCT_LEASES.format(values=_values(len(ordered))),
            tuple(x for pair in ordered for x in pair)).all()}
    per_acct: dict[int, int] = defaultdict(int)
    for lease_id, amount in ordered:
        if lease_id in done:
            out.lease_deducted[lease_id] = amount
            per_acct[acct_of[lease_id]] += amount
        else:
            out.leases_gone.add(lease_id)
    if per_acct and conn.dialect.name == "sqlite":
        rows = sorted(per_acct.items())
        conn.exec_driver_sql(_POST_LEASED.format(values=_values(len(rows))),
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
    postgres = conn.dialect.name != "sqlite"
    if postgres:
        # The shared lock comes before this batch takes usage record ids: the rollup worker
        # waits for holders of this lock to end before it trusts that no lower id can still
        # commit.
        _pg(conn, _LOCK_PG, (_locked_ids(items),), fetch=False)
    _deduct_leases(conn, items, out)
    _charge_rest(conn, items, out)
    settlement_id = "stl_" + secrets.token_hex(12)
    postings, transfers = _ledger_rows(items, system, now)
    if postgres:
        _post_pg(conn, items, postings, transfers, settlement_id, now)
    else:
        _post_sqlite(conn, items, postings, transfers, settlement_id, now)
    return out


def _locked_ids(items: Sequence[Settlement]) -> list[int]:
    return sorted({i.acct_id for i in items} | {p.acct_id for i in items for p in i.limits})


def _ledger_rows(items: Sequence[Settlement], system: SystemAccounts, now: dt.datetime,
                 ) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int, str]]]:
    """The batch's postings to the system accounts (account, credit, debit) and its transfers
    (debit account, credit account, amount, kind), from the items' charges and write-offs;
    stamps each item with the settlement time `now`."""
    charged = sum(i.charged_nano for i in items)
    written_off = sum(i.writeoff_nano for i in items)
    charged_by_acct: dict[int, int] = defaultdict(int)
    charged_by_limit: dict[int, int] = defaultdict(int)
    for item in items:
        item.settled_at = now
        charged_by_acct[item.acct_id] += item.charged_nano
        for part in item.limits:
            charged_by_limit[part.acct_id] += item.charged_nano
    transfers: list[tuple[int, int, int, str]] = [
        (acct, system.revenue, amount, "usage")
        for acct, amount in sorted(charged_by_acct.items()) if amount]
    if written_off:
        transfers.append((system.writeoff, system.revenue, written_off, "usage_writeoff"))
    limit_total = 0
    for acct, amount in sorted(charged_by_limit.items()):
        if amount:
            limit_total += amount
            transfers.append((acct, system.limits, amount, "spend_limit_use"))
    # The system accounts' side: revenue is credited with all usage, the write-off account
    # debited with what was written off, the limits account credited with limit use.
    postings = [(acct, credit, debit) for acct, credit, debit in (
        (system.revenue, charged + written_off, 0), (system.writeoff, 0, written_off),
        (system.limits, limit_total, 0)) if credit or debit]
    return postings, transfers


async def settle_leased_pg(conn: StatementConnection, items: Sequence[Settlement],
                           system: SystemAccounts) -> BatchOutcome | None:
    """The common batch on PostgreSQL, in one autocommit statement on the event loop (one round
    trip, no BEGIN or COMMIT, no thread hand-off): every request's cost was covered by its
    leases in memory. The statement locks what `settle_batch` locks, in the same order, and
    checks that every lease is still open and holds what is deducted; only then does it deduct
    and post anything. Returns None, having changed nothing, when the batch is not of that kind
    or a check fails: the caller then runs `settle_batch`."""
    covered = _covered_by_leases(items)
    if covered is None:
        return None
    ordered, acct_of = covered
    for item in items:
        item.charged_nano, item.writeoff_nano = item.cost_nano, 0
    now = dt.datetime.now(dt.UTC)
    settlement_id = "stl_" + secrets.token_hex(12)
    postings, transfers = _ledger_rows(items, system, now)
    usage = [dict(zip(_USAGE_COLUMNS, _usage_columns(item), strict=True)) for item in items]
    try:
        [(ok,)] = await conn.fetchall(_SETTLE_LEASED_PG, (
            _locked_ids(items),
            _json([{"lease_id": lease_id, "acct_id": acct_of[lease_id], "amount": amount}
                   for lease_id, amount in ordered]),
            _json([{"id": a, "credit": c, "debit": d} for a, c, d in postings]),
            settlement_id, now,
            _json([{"d": d, "c": c, "a": a, "k": k} for d, c, a, k in transfers]),
            settlement_id, now, _json(usage)))
    except BaseException:
        _unsettle(items)
        raise
    if not ok:
        _unsettle(items)
        return None
    return BatchOutcome(lease_deducted=dict(ordered))


def _covered_by_leases(items: Sequence[Settlement]
                       ) -> tuple[list[tuple[int, int]], dict[int, int]] | None:
    """What each lease pays for a batch whose every cost its leases cover, (lease id, amount)
    in ascending lease id, and each lease's account; None for any other batch."""
    per_lease: dict[int, int] = defaultdict(int)
    acct_of: dict[int, int] = {}
    for item in items:
        if item.cost_nano == 0:
            continue
        if item.lease_id is None or item.from_lease_nano != item.cost_nano:
            return None
        per_lease[item.lease_id] += item.cost_nano
        acct_of[item.lease_id] = item.acct_id
        for part in item.limits:
            per_lease[part.lease_id] += item.cost_nano
            acct_of[part.lease_id] = part.acct_id
    return sorted(per_lease.items()), acct_of


def recover_batch(conn: sa.Connection, items: Sequence[Settlement],
                  one_statement: bool) -> BatchOutcome | None:
    """After an attempt whose end is unknown (its connection broke, or a retry collided with
    it): was the batch settled all the same? It was when its usage records are there, as one
    transaction or statement wrote all of them or none. Then the items get what was posted and
    the outcome says what the process must apply to its leases: exact when that attempt was
    the one statement (it deducts every lease of the batch or changes nothing); after the full
    transaction every lease of the batch counts as gone, so the process stops using them and
    what they still hold returns to the balance when they lapse. None: not settled (or no
    record at all, the batch is then retried)."""
    ids = [item.usage.request_id for item in items]
    rows = {r.request_id: r for r in conn.execute(
        sa.select(usage_records.c.request_id, usage_records.c.charged_nano,
                  usage_records.c.writeoff_nano, usage_records.c.settled_at)
        .where(usage_records.c.request_id.in_(ids)))}
    if len(rows) < len(set(ids)):
        return None
    for item in items:
        row = rows[item.usage.request_id]
        item.charged_nano, item.writeoff_nano = int(row.charged_nano), int(row.writeoff_nano)
        item.settled_at = row.settled_at
    covered = _covered_by_leases(items) if one_statement else None
    if covered is not None:
        return BatchOutcome(lease_deducted=dict(covered[0]))
    return BatchOutcome(leases_gone={lease for item in items for lease in (
        item.lease_id, *(p.lease_id for p in item.limits)) if lease is not None})


def _unsettle(items: Sequence[Settlement]) -> None:
    for item in items:
        item.charged_nano = item.writeoff_nano = 0
        item.settled_at = None


def _usage_columns(item: Settlement) -> tuple[object, ...]:
    """A usage record's columns but the settlement id and time (_USAGE_COLUMNS)."""
    u = item.usage
    return (u.request_id, u.organization_id, u.api_key_id, item.acct_id, u.endpoint, u.model,
            u.upstream, u.prompt_tokens, u.cached_tokens, u.completion_tokens, u.usage_source,
            u.status, u.streamed, u.latency_ms, item.cost_nano, item.charged_nano,
            item.writeoff_nano, u.project_id)


def _pg(conn: sa.Connection, statement: str, params: tuple[object, ...], *,
        fetch: bool = True) -> list[Any]:
    """Run one of the PostgreSQL statements above on the driver's cursor, in the connection's
    transaction: SQLAlchemy's execution and result layers cost more than these fixed, prepared
    statements themselves (measured: ~0.1 ms per statement)."""
    with conn.connection.driver_connection.cursor() as cur:  # type: ignore[union-attr]
        cur.execute(statement, params)
        return cur.fetchall() if fetch else []


def _json(rows: object) -> str:
    """Rows for PostgreSQL's json_to_recordset: one parameter, dumped in C, instead of a
    parameter per value (or a Python-dumped array per column)."""
    return orjson.dumps(rows).decode()


def _post_pg(conn: sa.Connection, items: Sequence[Settlement],
             postings: list[tuple[int, int, int]], transfers: list[tuple[int, int, int, str]],
             settlement_id: str, now: dt.datetime) -> None:
    usage = [dict(zip(_USAGE_COLUMNS, _usage_columns(item), strict=True)) for item in items]
    _pg(conn, _POST_PG, fetch=False, params=(
        _json([{"id": a, "credit": c, "debit": d} for a, c, d in postings]),
        settlement_id, now,
        _json([{"d": d, "c": c, "a": a, "k": k} for d, c, a, k in transfers]),
        settlement_id, now, _json(usage)))


def _post_sqlite(conn: sa.Connection, items: Sequence[Settlement],
                 postings: list[tuple[int, int, int]], transfers: list[tuple[int, int, int, str]],
                 settlement_id: str, now: dt.datetime) -> None:
    for acct, credit, debit in postings:
        if credit:
            conn.exec_driver_sql(_CREDIT, (credit, acct))
        if debit:
            conn.exec_driver_sql(_DEBIT, (debit, acct))
    # the text form SQLAlchemy's SQLite DateTime uses
    stamp = now.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    if transfers:
        conn.exec_driver_sql(_INSERT_TRANSFER, [(*t, settlement_id, stamp) for t in transfers])
    conn.exec_driver_sql(_INSERT_USAGE, [(*_usage_columns(item), settlement_id, stamp)
                                         for item in items])
