"""The email sender the settings choose."""

from __future__ import annotations

from faregate.config import Settings
from faregate.notify.email import EmailSender, email_sender_from


def email_sender(s: Settings) -> EmailSender:
    return email_sender_from(
        s.email_sender, data_dir=s.resolved_data_dir, sender=s.email_from,
        smtp_host=s.smtp_host, smtp_port=s.smtp_port, smtp_username=s.smtp_username,
        smtp_password=s.smtp_password.get_secret_value() if s.smtp_password else None,
        smtp_starttls=s.smtp_starttls)
