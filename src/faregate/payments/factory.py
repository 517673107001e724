"""The payment processor the settings choose."""

from __future__ import annotations

import ipaddress

from faregate.config import Settings
from faregate.db.runner import Database
from faregate.payments.processor import PaymentProcessor


class SandboxOnPublicAddress(RuntimeError):
    pass


def _loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def processor_from(s: Settings, db: Database) -> PaymentProcessor:
    if s.payments_processor == "stripe":
        from faregate.payments.stripe_processor import StripeProcessor

        if s.stripe_secret_key is None or s.stripe_webhook_secret is None:
            raise RuntimeError("FAREGATE_PAYMENTS_PROCESSOR=stripe needs "
                               "FAREGATE_STRIPE_SECRET_KEY and FAREGATE_STRIPE_WEBHOOK_SECRET")
        return StripeProcessor(api_key=s.stripe_secret_key.get_secret_value(),
                               webhook_secret=s.stripe_webhook_secret.get_secret_value(),
                               api_base=s.stripe_api_base)
    if not _loopback(s.host) and not s.sandbox_payments_public:
        raise SandboxOnPublicAddress(
            f"The sandbox payment processor simulates payments; it refuses to serve on "
            f"{s.host}. Set FAREGATE_PAYMENTS_PROCESSOR=stripe, or, to demo Faregate with "
            "simulated payments, FAREGATE_SANDBOX_PAYMENTS_PUBLIC=true (the dashboard then "
            "says that payments are simulated).")
    from faregate.payments.sandbox.processor import SandboxProcessor

    return SandboxProcessor(db, webhook_secret=s.secret("sandbox_webhook_secret"))
