"""Auto-recharge: when the balance falls under the organization's threshold, the worker charges
the saved card off-session — never on the request path, one attempt in flight per organization."""

from __future__ import annotations

import datetime as dt
import logging

import sqlalchemy as sa

from faregate.billing.charges import Outcome, Policy, charge_saved_card
from faregate.billing.methods import default_method
from faregate.db.runner import Database
from faregate.db.schema import accounts, billing_states, charge_attempts
from faregate.errors import FaregateError
from faregate.kit.metrics import AUTO_RECHARGES
from faregate.payments.processor import PaymentProcessor

log = logging.getLogger("faregate.billing")

# After a failed auto-recharge, wait this long before the next one (the second failure in a
# row suspends billing by default).
RETRY_AFTER = dt.timedelta(minutes=10)


def due(conn: sa.Connection) -> list[tuple[str, int, str | None, str]]:
    """(organization, amount, method, attempts so far) for each organization under its
    threshold, with no charge in flight and no recent failed auto-recharge."""
    now = dt.datetime.now(dt.UTC)
    rows = conn.execute(
        sa.select(billing_states.c.organization_id, billing_states.c.auto_recharge_amount_nano,
                  billing_states.c.auto_recharge_method_id)
        .join(accounts, sa.and_(accounts.c.organization_id == billing_states.c.organization_id,
                                accounts.c.kind == "org_credit"))
        .where(billing_states.c.auto_recharge, billing_states.c.suspended_at.is_(None),
               billing_states.c.auto_recharge_amount_nano.is_not(None),
               accounts.c.credits_nano - accounts.c.debits_nano
               < billing_states.c.auto_recharge_threshold_nano)).all()
    out = []
    for org, amount, method in rows:
        busy = conn.execute(sa.select(sa.func.count()).select_from(charge_attempts).where(
            charge_attempts.c.organization_id == org,
            sa.or_(charge_attempts.c.status == "pending",
                   sa.and_(charge_attempts.c.kind == "auto_recharge",
                           charge_attempts.c.status.in_(("failed", "requires_action")),
                           charge_attempts.c.created_at > now - RETRY_AFTER)))).scalar_one()
        if not busy:
            made = conn.execute(sa.select(sa.func.count()).select_from(charge_attempts)
                                .where(charge_attempts.c.organization_id == org)).scalar_one()
            out.append((org, int(amount), method or default_method(conn, org), str(made)))
    return out


async def run_auto_recharges(db: Database, processor: PaymentProcessor,
                             policy: Policy) -> list[Outcome]:
    outcomes = []
    for org, amount, method, previous in await db.run(due):
        if method is None:
            AUTO_RECHARGES.labels("no_method").inc()
            continue
        # One attempt per state of the organization: workers in other processes that saw the
        # same number of attempts use the same key, and get "in progress" or the first result
        # instead of making a second charge.
        slot = f"{previous}"
        try:
            outcome = await charge_saved_card(
                db, processor, organization_id=org, kind="auto_recharge", amount_nano=amount,
                method_ref=method, client_key=f"auto:{slot}", user_id=None, email=None,
                policy=policy)
        except FaregateError as exc:
            AUTO_RECHARGES.labels("skipped").inc()
            log.info("auto-recharge for %s skipped: %s", org, exc.message)
            continue
        # succeeded, failed, requires_action, pending (the processor has not answered), error
        AUTO_RECHARGES.labels("replayed" if outcome.replayed else outcome.attempt.status).inc()
        outcomes.append(outcome)
    return outcomes
