"""Emails about billing, to the organization's owners."""

from __future__ import annotations

import sqlalchemy as sa

from faregate.identity.access import owner_emails
from faregate.notify.email import EmailMessage


def suspension_notices(conn: sa.Connection, organization_id: str, *, reason: str,
                       billing_url: str) -> list[EmailMessage]:
    text = (f"Billing for your Faregate organization has been suspended: {reason}.\n\n"
            "API requests are refused (HTTP 429, code billing_not_active) until a payment goes "
            "through. Add a working card or top up on the billing page:\n\n"
            f"{billing_url}\n\nAutomatic recharge has been turned off.\n")
    return [EmailMessage(to=e, subject="Faregate billing suspended: payments failed",
                         text=text) for e in owner_emails(conn, organization_id)]
