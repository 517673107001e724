"""Alert jobs: email the owners when a project crosses a budget threshold and when the
balance falls under their low-balance amount (see usage/alerts.py)."""

from __future__ import annotations

from faregate.config import Settings
from faregate.db.runner import Database
from faregate.notify.email import EmailSender
from faregate.usage.alerts import send_budget_alerts, send_low_balance_alerts
from faregate.worker.jobs import Job

ALERTS_INTERVAL_S = 2.0


def alert_jobs(settings: Settings, email: EmailSender) -> list[Job]:
    url = settings.resolved_public_url

    async def budget_alerts(db: Database) -> int:
        return await send_budget_alerts(db, email, public_url=url)

    async def low_balance_alerts(db: Database) -> int:
        return await send_low_balance_alerts(db, email, public_url=url)

    return [Job("budget-alerts", ALERTS_INTERVAL_S, budget_alerts),
            Job("low-balance-alerts", ALERTS_INTERVAL_S, low_balance_alerts)]
