"""What the /api endpoints need, built once per process in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from faregate.config import Settings
from faregate.db.runner import Database
from faregate.notify.email import EmailSender
from faregate.payments.processor import PaymentProcessor
from faregate.phone.sms import SmsSender


@dataclass(frozen=True, slots=True)
class ApiContext:
    settings: Settings
    db: Database
    email: EmailSender
    sms: SmsSender
    session_secret: bytes  # signs CSRF tokens, hashes session tokens and email links
    pepper: bytes  # hashes API keys, SMS codes and phone numbers
    payments: PaymentProcessor | None = None
