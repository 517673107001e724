"""`faregate ledger verify`: check every invariant of the ledger; report each mismatch."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from faregate.db.engine import now_ms_expr
from faregate.db.schema import accounts, leases, transfers, usage_records
from faregate.ledger.accounts import WRITEOFF, account_id
from faregate.ledger.lots import lot_problems

# A lease is reported as lapsed only once it is this far past its expiry: the sweeper runs
# every few seconds, so a just-lapsed lease is normal while a server runs.
LAPSED_GRACE_MS = 60_000


def _pairs(rows: Sequence[Any]) -> dict[int, int]:
    return {int(r[0]): int(r[1]) for r in rows}


def verify(conn: sa.Connection) -> list[str]:
    """Return a list of human-readable problems; empty means the ledger is consistent."""
    problems: list[str] = []
    credit_sums: dict[int, int] = _pairs(conn.execute(
        sa.select(transfers.c.credit_account_id, sa.func.sum(transfers.c.amount_nano))
        .group_by(transfers.c.credit_account_id)).all())
    debit_sums: dict[int, int] = _pairs(conn.execute(
        sa.select(transfers.c.debit_account_id, sa.func.sum(transfers.c.amount_nano))
        .group_by(transfers.c.debit_account_id)).all())
    lease_sums: dict[int, int] = _pairs(conn.execute(
        sa.select(leases.c.account_id, sa.func.sum(leases.c.amount_nano))
        .where(leases.c.status == "open").group_by(leases.c.account_id)).all())
    for row in conn.execute(sa.select(accounts)).all():
        credits, debits, held = int(row.credits_nano), int(row.debits_nano), int(row.held_nano)
        if credits != int(credit_sums.get(row.id, 0)):
            problems.append(f"account {row.code}: credits {credits} != sum of credit transfers "
                            f"{credit_sums.get(row.id, 0)}")
        if debits != int(debit_sums.get(row.id, 0)):
            problems.append(f"account {row.code}: debits {debits} != sum of debit transfers "
                            f"{debit_sums.get(row.id, 0)}")
        if held != int(lease_sums.get(row.id, 0)):
            problems.append(f"account {row.code}: held {held} != open leases "
                            f"{lease_sums.get(row.id, 0)}")
        if row.guarded and debits + held > credits:
            problems.append(f"account {row.code}: overdrawn (debits {debits} + held {held} > "
                            f"credits {credits})")
    total_credits = sum(int(v) for v in credit_sums.values())
    total_debits = sum(int(v) for v in debit_sums.values())
    if total_credits != total_debits:
        problems.append(f"double entry broken: credits {total_credits} != debits {total_debits}")
    problems += _usage_problems(conn)
    problems += lot_problems(conn)
    lapsed = conn.execute(
        sa.select(sa.func.count()).select_from(leases)
        .where(leases.c.status == "open",
               leases.c.expires_at_ms < now_ms_expr(conn.dialect) - LAPSED_GRACE_MS)
    ).scalar_one()
    if lapsed:
        problems.append(f"{lapsed} lapsed lease(s) still open (is the sweeper running?)")
    return problems


def _usage_problems(conn: sa.Connection) -> list[str]:
    problems: list[str] = []
    split = conn.execute(sa.select(sa.func.count()).select_from(usage_records).where(
        usage_records.c.cost_nano != usage_records.c.charged_nano + usage_records.c.writeoff_nano
    )).scalar_one()
    if split:
        problems.append(f"{split} usage record(s) whose cost != charged + written off")
    # Each usage transfer is the sum of its batch's charges for that account ...
    charged = (
        sa.select(usage_records.c.settlement_id, usage_records.c.account_id,
                  sa.func.sum(usage_records.c.charged_nano).label("amount"))
        .where(usage_records.c.charged_nano > 0)
        .group_by(usage_records.c.settlement_id, usage_records.c.account_id))
    posted = (
        sa.select(transfers.c.settlement_id, transfers.c.debit_account_id.label("account_id"),
                  transfers.c.amount_nano.label("amount"))
        .where(transfers.c.kind == "usage"))
    problems += _mismatches(conn, charged, posted, "usage charges")
    # ... and each batch's write-off transfer the sum of what its records wrote off.
    written = (
        sa.select(usage_records.c.settlement_id, sa.func.sum(usage_records.c.writeoff_nano)
                  .label("amount"))
        .where(usage_records.c.writeoff_nano > 0).group_by(usage_records.c.settlement_id))
    booked = (
        sa.select(transfers.c.settlement_id, transfers.c.amount_nano.label("amount"))
        .where(transfers.c.kind == "usage_writeoff"))
    problems += _mismatches(conn, written, booked, "usage write-offs")
    problems += _limit_problems(conn)
    writeoff_debits = conn.execute(
        sa.select(accounts.c.debits_nano).where(accounts.c.id == account_id(conn, WRITEOFF))
    ).scalar_one()
    written_off = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(usage_records.c.writeoff_nano), 0))).scalar_one()
    if int(writeoff_debits) != int(written_off):
        problems.append(f"write-off account debits {writeoff_debits} != usage written off "
                        f"{written_off}")
    return problems


def _limit_problems(conn: sa.Connection) -> list[str]:
    """Each spend-limit debit (accounts `key:{key_id}:...`) and each project budget debit
    (`project:{project_id}:month:...`) is what the batch charged requests of that key or
    project — or less, by the requests that were authorized before the limit or budget was
    set (a server's view of it is up to 2 s old, and a key's limit can be set, removed or
    moved to another period while its requests run; those requests were not reserved against
    it, so nothing of them was debited)."""
    posted: dict[tuple[str, str, str], int] = defaultdict(int)
    for settlement_id, code, amount in conn.execute(
            sa.select(transfers.c.settlement_id, accounts.c.code, transfers.c.amount_nano)
            .join(accounts, accounts.c.id == transfers.c.debit_account_id)
            .where(transfers.c.kind == "spend_limit_use")).all():
        kind, owner = code.split(":")[:2]
        posted[(settlement_id, kind, owner)] += int(amount)
    if not posted:
        return []
    settlements = {k[0] for k in posted}
    charged: dict[tuple[str, str, str], int] = {}
    for kind, column in (("key", usage_records.c.api_key_id),
                         ("project", usage_records.c.project_id)):
        if any(k[1] == kind for k in posted):
            for sid, owner, amount in conn.execute(
                    sa.select(usage_records.c.settlement_id, column,
                              sa.func.sum(usage_records.c.charged_nano))
                    .where(usage_records.c.settlement_id.in_(settlements))
                    .group_by(usage_records.c.settlement_id, column)).all():
                charged[(sid, kind, owner)] = int(amount)
    wrong = [k for k, v in posted.items() if v > charged.get(k, 0)]
    if not wrong:
        return []
    return [f"{len(wrong)} spend-limit debit(s) differ from their key's or project's charges, "
            f"e.g. {wrong[0]}: transfers {posted[wrong[0]]} != records "
            f"{charged.get(wrong[0], 0)}"]


def _mismatches(conn: sa.Connection, expected: sa.Select[Any], actual: sa.Select[Any],
                what: str) -> list[str]:
    """Rows of `expected` and `actual` (same key columns, then `amount`) that differ."""
    a = {tuple(r[:-1]): int(r[-1]) for r in conn.execute(expected).all()}
    b: dict[tuple[object, ...], int] = defaultdict(int)
    for r in conn.execute(actual).all():
        b[tuple(r[:-1])] += int(r[-1])
    wrong = [key for key in a.keys() | b.keys() if a.get(key, 0) != b.get(key, 0)]
    if not wrong:
        return []
    return [f"{len(wrong)} settlement(s) whose {what} differ from their transfers, e.g. "
            f"{wrong[0]}: records {a.get(wrong[0], 0)} != transfers {b.get(wrong[0], 0)}"]
