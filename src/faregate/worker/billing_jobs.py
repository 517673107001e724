"""Billing jobs: auto-recharge under the threshold, and reconciliation of charges a crash or
an outage left pending. Owners are emailed when a failed auto-recharge suspends billing."""

from __future__ import annotations

import logging

from faregate.billing.autorecharge import run_auto_recharges
from faregate.billing.charges import Policy, reconcile
from faregate.billing.notices import send_suspension_notices
from faregate.config import Settings
from faregate.db.runner import Database
from faregate.notify.email import EmailSender
from faregate.payments.processor import PaymentProcessor
from faregate.worker.jobs import Job

log = logging.getLogger("faregate.worker")


def billing_jobs(settings: Settings, processor: PaymentProcessor,
                 email: EmailSender) -> list[Job]:
    policy = Policy(failures_to_suspend=settings.failed_charges_to_suspend,
                    reinstate_on_payment=settings.reinstate_on_payment)

    async def auto_recharge(db: Database) -> int:
        outcomes = await run_auto_recharges(db, processor, policy)
        for o in outcomes:
            if o.suspended_now:
                await send_suspension_notices(db, email, o.attempt.organization_id,
                                              public_url=settings.resolved_public_url)
        return len(outcomes)

    async def reconcile_charges(db: Database) -> int:
        return await reconcile(db, processor, policy)

    return [Job("auto-recharge", 2.0, auto_recharge),
            Job("reconcile-charges", 60.0, reconcile_charges)]
