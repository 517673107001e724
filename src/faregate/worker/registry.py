"""Every background job, for `faregate worker` and for a server that runs the jobs itself."""

from __future__ import annotations

from faregate.config import Settings
from faregate.notify.email import EmailSender
from faregate.payments.processor import PaymentProcessor
from faregate.worker.alert_jobs import alert_jobs
from faregate.worker.billing_jobs import billing_jobs
from faregate.worker.credit_jobs import credit_jobs
from faregate.worker.jobs import JOBS, Job
from faregate.worker.limit_jobs import LIMIT_JOBS
from faregate.worker.log_jobs import log_jobs
from faregate.worker.tier_jobs import TIER_JOBS
from faregate.worker.usage_jobs import USAGE_JOBS


def all_jobs(settings: Settings, processor: PaymentProcessor, email: EmailSender) -> list[Job]:
    return [*JOBS, *USAGE_JOBS, *LIMIT_JOBS, *billing_jobs(settings, processor, email),
            *credit_jobs(settings),
            *alert_jobs(settings, email), *log_jobs(settings), *TIER_JOBS]
