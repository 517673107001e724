"""The sandbox processor: Stripe's test mode, embedded and offline (the default processor).

Only Stripe's published test cards are accepted, each with its scripted behaviour
(behaviors.py). Semantics, as on Stripe:
- verify_card authorizes the amount (manual capture) and cancels it at once. The returned
  Charge reads `succeeded` when the card held the amount (retrieve_payment then reports the
  PaymentIntent as `canceled`), `failed` with the decline, or `requires_action` with a client
  secret. A verification that succeeds sets the card up: 4000002500003155 then charges
  off-session without authentication (on-session it always asks).
- charge captures at once. On-session, a card that wants authentication gives
  `requires_action`; off-session it fails with `authentication_required` (and a client secret,
  so the customer can come back and authenticate it).
- Authentication is what the browser does on Stripe's 3D Secure page; here it is
  `POST /sandbox/v1/payment_intents/{id}/confirm` (or SandboxProcessor.authenticate).
- Idempotency keys: same key and parameters, same payment; other parameters, PaymentError
  `idempotency_key_in_use`.
"""

from faregate.payments.sandbox.asgi import sandbox_router
from faregate.payments.sandbox.processor import SandboxProcessor
from faregate.payments.sandbox.tokens import tokenize
from faregate.payments.sandbox.webhooks import event_payload, sign_payload

__all__ = ["SandboxProcessor", "event_payload", "sandbox_router", "sign_payload", "tokenize"]
