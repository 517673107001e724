"""Webhook events from the processor: stored once per (processor, event id), then applied.

A payment's success credits the organization found from the processor's customer (never from
metadata), keyed on the payment id, so the synchronous response, the webhook, its redeliveries
and events out of order credit once between them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from faregate.billing import state
from faregate.billing.credit import organization_of_customer
from faregate.billing.refunds import take_back
from faregate.billing.settle import payment_succeeded
from faregate.db.schema import charge_attempts, webhook_events
from faregate.payments.processor import WALLETS, WebhookEvent

_SUCCEEDED = {"payment_intent.succeeded", "charge.succeeded"}
_FAILED = {"payment_intent.payment_failed", "charge.failed"}


@dataclass(frozen=True, slots=True)
class Applied:
    duplicate: bool
    credited: bool = False
    organization_id: str | None = None
    suspended_now: bool = False


def apply_event(conn: sa.Connection, *, processor: str, event: WebhookEvent,
                failures_to_suspend: int, reinstate_on_payment: bool) -> Applied:
    now = dt.datetime.now(dt.UTC)
    payment = event.payment
    try:
        with conn.begin_nested():
            conn.execute(webhook_events.insert().values(
                processor=processor, event_id=event.event_id, type=event.type,
                payment_id=payment.payment_id if payment else None, received_at=now))
    except IntegrityError:
        return Applied(duplicate=True)
    result = Applied(duplicate=False)
    if payment is not None and payment.payment_id is not None:
        org = organization_of_customer(conn, processor, payment.customer_id)
        attempt = conn.execute(sa.select(charge_attempts).where(
            charge_attempts.c.payment_id == payment.payment_id).with_for_update()).first()
        if org is not None and event.type in _SUCCEEDED and payment.status == "succeeded":
            payment_succeeded(conn, processor=processor, charge=payment, organization_id=org,
                              reinstate=reinstate_on_payment)
            if attempt is not None:
                conn.execute(charge_attempts.update()
                             .where(charge_attempts.c.id == attempt.id)
                             .values(status="succeeded", updated_at=now,
                                     credited_at=attempt.credited_at or now))
            result = Applied(False, True, org)
        elif (org is not None and event.type in _FAILED and attempt is not None
              and attempt.status == "pending" and attempt.payment_method_id not in WALLETS):
            suspended = state.record_failed_charge(
                conn, org, threshold=failures_to_suspend,
                reason=payment.decline_code or "declined")
            conn.execute(charge_attempts.update().where(charge_attempts.c.id == attempt.id)
                         .values(status="failed", decline_code=payment.decline_code,
                                 message=payment.message, updated_at=now))
            result = Applied(False, False, org, suspended)
        elif org is not None and event.type == "charge.refunded" and \
                event.refunded_minor is not None:
            take_back(conn, processor=processor, organization_id=org,
                      reference=payment.payment_id, total_minor=event.refunded_minor,
                      kind="refund", actor=f"{processor}:webhook")
            result = Applied(False, False, org)
        elif org is not None and event.type == "charge.dispute.created":
            # The disputed amount is withdrawn at once; a dispute won is returned by the
            # operator (a grant), as the outcome may take months.
            take_back(conn, processor=processor, organization_id=org,
                      reference=event.dispute_id or payment.payment_id,
                      total_minor=payment.amount_minor, kind="dispute",
                      actor=f"{processor}:webhook")
            result = Applied(False, False, org)
    conn.execute(webhook_events.update().where(webhook_events.c.processor == processor,
                                               webhook_events.c.event_id == event.event_id)
                 .values(processed_at=now))
    return result
