"""The Stripe payment processor (stripe-python on aiohttp)."""

from faregate.payments.stripe.processor import StripeProcessor

__all__ = ["StripeProcessor"]
