"""Emails to an organization's owners when a project's spending crosses an alert threshold of
its monthly budget, and when the balance falls under the amount an owner set.

Both are found by the worker every few seconds with one query each, over only the projects
that have a budget and the organizations that set a low-balance amount, and are sent at most
once: a budget alert is a row of `budget_alerts` (primary key: project, month, threshold) and
a low-balance alert is `billing_states.low_balance_alerted_at`; the worker that inserts the
row (or sets the stamp) sends the email, after committing it, so several workers never send
the same alert twice. If no owner's email could be delivered, the row (or stamp) is removed
again and a later round retries; once one owner has it, it is not sent again (a crash between
the commit and the send loses that alert rather than risk a duplicate).

A budget's spending is what its month's limit account was debited by requests
(`spend_limit_use`): the same number the hard stop uses."""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from faregate.audit import trail
from faregate.db.runner import Database
from faregate.db.schema import accounts, billing_states, budget_alerts, projects, transfers
from faregate.errors import InvalidRequest
from faregate.identity.access import owner_emails
from faregate.identity.projects import bring_budget_to_target, parse_pcts
from faregate.kit.money import NANO_PER_USD, MoneyFormatError, nano_to_usd, usd_to_nano
from faregate.ledger.limits import LimitWindow, window
from faregate.notify.email import EmailMessage, EmailSender

log = logging.getLogger("faregate.alerts")


# --- project budgets ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    """Thresholds a project crossed this month that no email announced yet."""

    project_id: str
    project_name: str
    organization_id: str
    period_start: str  # YYYY-MM-DD
    resets_at: dt.datetime
    budget_nano: int
    spent_nano: int
    pcts: tuple[int, ...]  # newly crossed, ascending


@dataclass(frozen=True, slots=True)
class _BudgetRow:
    project_id: str
    name: str
    organization_id: str
    budget_nano: int
    pcts: tuple[int, ...]
    acct_id: int
    credits_nano: int
    debits_nano: int
    held_nano: int


def _budget_rows(conn: sa.Connection, w: LimitWindow) -> list[_BudgetRow]:
    """Projects with a budget whose account for this month exists, with its sums."""
    code = sa.literal("project:") + projects.c.id + sa.literal(
        f":month:{w.start.date().isoformat()}")
    rows = conn.execute(
        sa.select(projects.c.id, projects.c.name, projects.c.organization_id,
                  projects.c.monthly_budget_nano, projects.c.budget_alert_pcts,
                  accounts.c.id.label("acct_id"), accounts.c.credits_nano,
                  accounts.c.debits_nano, accounts.c.held_nano)
        .join(accounts, accounts.c.code == code)
        .where(projects.c.monthly_budget_nano.is_not(None))).all()
    return [_BudgetRow(r.id, r.name, r.organization_id, int(r.monthly_budget_nano),
                       parse_pcts(r.budget_alert_pcts), int(r.acct_id), int(r.credits_nano),
                       int(r.debits_nano), int(r.held_nano)) for r in rows]


def _returned(conn: sa.Connection, acct_ids: list[int]) -> dict[int, int]:
    """What lowered budgets gave back, per account (debits that were not spending)."""
    if not acct_ids:
        return {}
    return {int(a): int(n) for a, n in conn.execute(
        sa.select(transfers.c.debit_account_id, sa.func.sum(transfers.c.amount_nano))
        .where(transfers.c.debit_account_id.in_(acct_ids), transfers.c.kind == "spend_limit")
        .group_by(transfers.c.debit_account_id)).all()}


def scan_budgets(conn: sa.Connection, now: dt.datetime | None = None
                 ) -> tuple[list[BudgetAlert], list[str]]:
    """Every project whose spending this month crossed thresholds not yet announced; and the
    projects whose account of this month may be off their budget — a lowered budget that
    servers' leases held part of, or an account a server opened from a view of the project a
    moment old (identity.projects.bring_budget_to_target checks each exactly)."""
    w = window("month", now)
    period = w.start.date().isoformat()
    rows = _budget_rows(conn, w)
    returned = _returned(conn, [r.acct_id for r in rows])
    sent: dict[str, set[int]] = defaultdict(set)
    spending = [r for r in rows if r.debits_nano > 0 and r.pcts]
    if spending:
        for project_id, pct in conn.execute(
                sa.select(budget_alerts.c.project_id, budget_alerts.c.threshold_pct)
                .where(budget_alerts.c.period_start == period,
                       budget_alerts.c.project_id.in_([r.project_id for r in spending]))).all():
            sent[project_id].add(int(pct))
    due: list[BudgetAlert] = []
    off_target: list[str] = []
    for r in rows:
        back = returned.get(r.acct_id, 0)
        limit = r.credits_nano - back
        if limit < r.budget_nano or (limit > r.budget_nano
                                     and r.credits_nano > r.debits_nano + r.held_nano):
            off_target.append(r.project_id)
        spent = r.debits_nano - back
        crossed = tuple(p for p in r.pcts
                        if spent * 100 >= p * r.budget_nano and p not in sent[r.project_id])
        if crossed:
            due.append(BudgetAlert(r.project_id, r.name, r.organization_id, period, w.end,
                                   r.budget_nano, spent, crossed))
    return due, off_target


def _insert(conn: sa.Connection) -> Any:
    return (postgresql.insert(budget_alerts) if conn.dialect.name == "postgresql"
            else sqlite.insert(budget_alerts))


def claim_budget_alert(conn: sa.Connection, alert: BudgetAlert) -> tuple[int, ...]:
    """Record the alert's thresholds; returns those this call recorded (another worker may
    have recorded some first: they are its to send)."""
    now = dt.datetime.now(dt.UTC)
    stmt = _insert(conn).values([
        {"project_id": alert.project_id, "period_start": alert.period_start,
         "threshold_pct": p, "spent_nano": alert.spent_nano, "sent_at": now}
        for p in alert.pcts]).on_conflict_do_nothing().returning(budget_alerts.c.threshold_pct)
    return tuple(sorted(int(p) for p in conn.execute(stmt).scalars()))


def unclaim_budget_alert(conn: sa.Connection, alert: BudgetAlert, pcts: tuple[int, ...]) -> None:
    conn.execute(budget_alerts.delete().where(
        budget_alerts.c.project_id == alert.project_id,
        budget_alerts.c.period_start == alert.period_start,
        budget_alerts.c.threshold_pct.in_(pcts)))


def budget_alert_messages(conn: sa.Connection, alert: BudgetAlert, pcts: tuple[int, ...], *,
                          public_url: str) -> list[EmailMessage]:
    top = max(pcts)
    budget, spent = nano_to_usd(alert.budget_nano), nano_to_usd(alert.spent_nano)
    resets = alert.resets_at.strftime("%Y-%m-%d %H:%M")
    url = f"{public_url}/settings/projects/{alert.project_id}"
    if top >= 100:
        subject = f"Faregate: project {alert.project_name} reached its monthly budget"
        state = ("It has reached its budget: requests with the project's keys are refused "
                 "(HTTP 429, code project_spend_limit_exceeded)")
    else:
        subject = (f"Faregate: project {alert.project_name} used {top}% of its monthly "
                   "budget")
        state = ("When it reaches the budget, requests with the project's keys are refused "
                 "(HTTP 429, code project_spend_limit_exceeded)")
    text = (f"Project {alert.project_name} ({alert.project_id}) has spent ${spent} of its "
            f"${budget} monthly budget this month ({top}% alert).\n\n"
            f"{state} until the budget resets on {resets} UTC, or until an owner raises it:\n\n"
            f"{url}\n")
    return [EmailMessage(to=e, subject=subject[:200], text=text)
            for e in owner_emails(conn, alert.organization_id)]


async def _deliver(email: EmailSender, mails: list[EmailMessage]) -> int:
    delivered = 0
    for mail in mails:
        try:
            await email.send(mail)
            delivered += 1
        except Exception:  # one bad address or a mail server down must not stop the others
            log.exception("could not email an alert to %s", mail.to)
    return delivered


def _claim_budget(conn: sa.Connection, alert: BudgetAlert, public_url: str
                  ) -> tuple[tuple[int, ...], list[EmailMessage]]:
    pcts = claim_budget_alert(conn, alert)
    if not pcts:
        return pcts, []
    return pcts, budget_alert_messages(conn, alert, pcts, public_url=public_url)


async def send_budget_alerts(db: Database, email: EmailSender, *, public_url: str) -> int:
    """Find, record and email the budget alerts that are due; returns how many went out.
    Also moves budget accounts that are off their budget to it."""
    due, off_target = await db.run(scan_budgets)
    for project_id in off_target:  # one short transaction each: no lock is held for long
        await db.run(bring_budget_to_target, project_id)
    sent = 0
    for alert in due:
        pcts, mails = await db.run(_claim_budget, alert, public_url)
        if not pcts:
            continue
        if mails and not await _deliver(email, mails):
            await db.run(unclaim_budget_alert, alert, pcts)  # retried next round
            continue
        sent += 1
    return sent


# --- low balance -------------------------------------------------------------------------------


MAX_LOW_BALANCE_NANO = 1_000_000 * NANO_PER_USD


def low_balance_from_usd(text: str) -> int:
    try:
        nano = usd_to_nano(text)
    except MoneyFormatError:
        raise InvalidRequest("Enter the amount in dollars, like 5 or 12.50.",
                             param="low_balance_usd") from None
    if not 0 < nano <= MAX_LOW_BALANCE_NANO:
        raise InvalidRequest(f"The amount must be more than $0 and at most "
                             f"${nano_to_usd(MAX_LOW_BALANCE_NANO)}; send null to turn the "
                             "email off.", param="low_balance_usd", code="invalid_value")
    return nano


def low_balance_of(conn: sa.Connection, organization_id: str) -> int | None:
    found = conn.execute(sa.select(billing_states.c.low_balance_nano).where(
        billing_states.c.organization_id == organization_id)).scalar()
    return int(found) if found is not None else None


def set_low_balance(conn: sa.Connection, organization_id: str, amount_nano: int | None, *,
                    actor: str, ip: str | None = None) -> int | None:
    """Set (or clear, with None) the balance under which the owners are emailed. A change
    re-arms the alert: if the balance is already under the new amount, the email goes out."""
    before = low_balance_of(conn, organization_id)
    now = dt.datetime.now(dt.UTC)
    values = {"low_balance_nano": amount_nano, "low_balance_alerted_at": None, "updated_at": now}
    done = conn.execute(billing_states.update()
                        .where(billing_states.c.organization_id == organization_id)
                        .values(**values))
    if done.rowcount == 0:
        conn.execute(billing_states.insert().values(organization_id=organization_id, **values))
    if before != amount_nano:
        trail.record(conn, action="billing.low_balance_alert_changed", actor=actor,
                     target=organization_id, organization_id=organization_id, ip=ip,
                     detail={"before_usd": nano_to_usd(before) if before is not None else None,
                             "after_usd": nano_to_usd(amount_nano)
                             if amount_nano is not None else None})
    return amount_nano


@dataclass(frozen=True, slots=True)
class LowBalance:
    organization_id: str
    balance_nano: int
    threshold_nano: int


def low_balance_changes(conn: sa.Connection) -> tuple[list[LowBalance], list[str]]:
    """(organizations now under their amount and not yet emailed, organizations back at or
    over it whose alert can be re-armed) — only organizations that set an amount."""
    bal = accounts.c.credits_nano - accounts.c.debits_nano
    low = billing_states.c.low_balance_nano
    alerted = billing_states.c.low_balance_alerted_at
    rows = conn.execute(
        sa.select(billing_states.c.organization_id, bal.label("balance"), low.label("low"),
                  alerted.label("alerted"))
        .join(accounts, sa.and_(accounts.c.organization_id == billing_states.c.organization_id,
                                accounts.c.kind == "org_credit"))
        .where(low.is_not(None),
               sa.or_(sa.and_(bal < low, alerted.is_(None)),
                      sa.and_(bal >= low, alerted.is_not(None))))).all()
    under = [LowBalance(r.organization_id, int(r.balance), int(r.low))
             for r in rows if r.alerted is None]
    back = [r.organization_id for r in rows if r.alerted is not None]
    return under, back


def claim_low_balance(conn: sa.Connection, organization_id: str, at: dt.datetime) -> bool:
    """Stamp the alert as sent; False when another worker did (or it was re-armed)."""
    done = conn.execute(billing_states.update().where(
        billing_states.c.organization_id == organization_id,
        billing_states.c.low_balance_nano.is_not(None),
        billing_states.c.low_balance_alerted_at.is_(None)).values(low_balance_alerted_at=at))
    return done.rowcount == 1


def rearm_low_balance(conn: sa.Connection, organization_ids: list[str],
                      at: dt.datetime | None = None) -> int:
    """Clear the stamps (of `at` only, when given: undoing a claim whose email failed)."""
    if not organization_ids:
        return 0
    q = billing_states.update().where(billing_states.c.organization_id.in_(organization_ids))
    q = q.where(billing_states.c.low_balance_alerted_at.is_not(None) if at is None
                else billing_states.c.low_balance_alerted_at == at)
    return int(conn.execute(q.values(low_balance_alerted_at=None)).rowcount)


def low_balance_messages(conn: sa.Connection, low: LowBalance, *,
                         public_url: str) -> list[EmailMessage]:
    balance, threshold = nano_to_usd(max(0, low.balance_nano)), nano_to_usd(low.threshold_nano)
    text = (f"The balance of your Faregate organization is ${balance}, under the "
            f"${threshold} you chose to be told about.\n\n"
            "When it runs out, API requests are refused (HTTP 429, insufficient_quota). Top "
            "up, or turn on automatic recharge, on the billing page:\n\n"
            f"{public_url}/settings/billing\n\n"
            "You will be emailed again only after the balance has been back over "
            f"${threshold}.\n")
    return [EmailMessage(to=e, subject=f"Faregate balance low: ${balance} left", text=text)
            for e in owner_emails(conn, low.organization_id)]


def _claim_low(conn: sa.Connection, low: LowBalance, at: dt.datetime,
               public_url: str) -> list[EmailMessage] | None:
    if not claim_low_balance(conn, low.organization_id, at):
        return None
    return low_balance_messages(conn, low, public_url=public_url)


async def send_low_balance_alerts(db: Database, email: EmailSender, *,
                                  public_url: str) -> int:
    """Email the organizations that fell under their amount; re-arm those back over it."""
    under, back = await db.run(low_balance_changes)
    if back:
        await db.run(rearm_low_balance, back)
    sent = 0
    for low in under:
        at = dt.datetime.now(dt.UTC)
        mails = await db.run(_claim_low, low, at, public_url)
        if mails is None:
            continue
        if mails and not await _deliver(email, mails):
            await db.run(rearm_low_balance, [low.organization_id], at)  # retried next round
            continue
        sent += 1
    return sent
