"""Emails about billing, to the organization's owners."""

from __future__ import annotations

import sqlalchemy as sa

from faregate.billing.state import get_state
from faregate.db.runner import Database
from faregate.identity.access import owner_emails
from faregate.notify.email import EmailMessage, EmailSender


def suspension_notices(conn: sa.Connection, organization_id: str, *,
                       billing_url: str) -> list[EmailMessage]:
    reason = get_state(conn, organization_id).suspended_reason or "payments failed"
    text = (f"Billing for your Faregate organization has been suspended: {reason}.\n\n"
            "API requests are refused (HTTP 429, code billing_not_active) until a payment goes "
            "through. Add a working card or top up on the billing page:\n\n"
            f"{billing_url}\n\nAutomatic recharge has been turned off.\n")
    return [EmailMessage(to=e, subject="Faregate billing suspended: payments failed",
                         text=text) for e in owner_emails(conn, organization_id)]


async def send_suspension_notices(db: Database, email: EmailSender, organization_id: str, *,
                                  public_url: str) -> None:
    """Email every owner that billing was suspended (after the suspension committed)."""
    url = f"{public_url}/settings/billing"
    for mail in await db.run(lambda conn: suspension_notices(conn, organization_id,
                                                             billing_url=url)):
        await email.send(mail)
