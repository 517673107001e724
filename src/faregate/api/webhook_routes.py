"""POST /webhooks/{processor}: events from the payment processor. Outside /api (no session, no
CSRF): the processor's signature is the authentication. Each event is stored once and applied;
a redelivery answers 200 without doing anything again."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request
from pydantic import BaseModel

from faregate.api.billing_routes import notify_suspension, processor_of
from faregate.api.deps import Ctx
from faregate.billing.webhooks import Applied, apply_event
from faregate.errors import InvalidRequest, NotFound
from faregate.payments.processor import WebhookSignatureError

router = APIRouter(tags=["webhooks"])


class Received(BaseModel):
    received: bool
    duplicate: bool


@router.post("/webhooks/{processor}", response_model=Received,
             summary="Payment processor events (signed like Stripe's)")
async def receive(processor: str, request: Request, ctx: Ctx) -> Received:
    p = processor_of(ctx)
    if processor != p.name:
        raise NotFound(f"No webhook endpoint for {processor!r} on this server.")
    payload = await request.body()
    try:
        event = await p.receive_webhook(payload, request.headers.get("stripe-signature"))
    except WebhookSignatureError as exc:
        raise InvalidRequest(f"Webhook signature verification failed: {exc}",
                             code="invalid_signature") from None
    s = ctx.settings

    def run(conn: sa.Connection) -> Applied:
        return apply_event(conn, processor=p.name, event=event,
                           failures_to_suspend=s.failed_charges_to_suspend,
                           reinstate_on_payment=s.reinstate_on_payment)
    applied = await ctx.db.run(run)
    if applied.suspended_now and applied.organization_id is not None:
        await notify_suspension(ctx, applied.organization_id)
    return Received(received=True, duplicate=applied.duplicate)
