"""Outgoing notifications (email) behind small protocols."""

from __future__ import annotations

from faregate.notify.email import (
    EmailDeliveryError,
    EmailMessage,
    EmailSender,
    OutboxEmailSender,
    SmtpEmailSender,
    email_sender_from,
    read_outbox,
)

__all__ = [
    "EmailDeliveryError",
    "EmailMessage",
    "EmailSender",
    "OutboxEmailSender",
    "SmtpEmailSender",
    "email_sender_from",
    "read_outbox",
]
