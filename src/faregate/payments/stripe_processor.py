"""The Stripe processor's import path for `payments.factory`; it lives in `payments.stripe`."""

from faregate.payments.stripe import StripeProcessor

__all__ = ["StripeProcessor"]
