"""Verified Stripe events as WebhookEvents, from the signed snapshot they carry."""

from __future__ import annotations

import stripe

from faregate.payments.processor import Charge, WebhookEvent
from faregate.payments.stripe.mapping import (
    charge_from_intent,
    charge_from_stripe_charge,
    object_id,
)

PAYMENT_INTENT_EVENTS = frozenset({"payment_intent.succeeded", "payment_intent.payment_failed"})
CHARGE_EVENTS = frozenset({"charge.succeeded", "charge.refunded"})
DISPUTE_EVENTS = frozenset({"charge.dispute.created", "charge.dispute.closed"})


def event_from(event: stripe.Event) -> WebhookEvent:
    """Map the events billing acts on; any other type comes back with no payment, so the
    inbox can record it once and ignore it."""
    obj = event.data.object
    if event.type in PAYMENT_INTENT_EVENTS and isinstance(obj, stripe.PaymentIntent):
        return WebhookEvent(event.id, event.type, payment=charge_from_intent(obj))
    if event.type in CHARGE_EVENTS and isinstance(obj, stripe.Charge):
        return WebhookEvent(event.id, event.type, payment=charge_from_stripe_charge(obj),
                            refunded_minor=obj.amount_refunded)
    if event.type in DISPUTE_EVENTS and isinstance(obj, stripe.Dispute):
        return WebhookEvent(event.id, event.type, payment=_disputed(obj), dispute_id=obj.id)
    return WebhookEvent(event.id, event.type)


def _disputed(dispute: stripe.Dispute) -> Charge | None:
    """The disputed payment. Only a succeeded charge can be disputed; `refresh_event` re-reads
    it from Stripe all the same."""
    payment_id = object_id(getattr(dispute, "payment_intent", None))
    if payment_id is None:
        return None
    return Charge(status="succeeded", payment_id=payment_id, amount_minor=dispute.amount,
                  currency=dispute.currency, customer_id=None, method_id=None)
