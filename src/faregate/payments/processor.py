"""The PaymentProcessor protocol and the values that cross it.

Amounts cross in the processor's minor unit (cents for USD), as Stripe's API does; billing/
converts to nano-USD. Card numbers and CVCs never cross it: the browser sends them to the
processor's own tokenization (Stripe.js to Stripe; the sandbox's `/sandbox/v1/tokens`), and
Faregate only sees a payment-method id with brand, last 4, expiry and fingerprint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

ChargeStatus = Literal["succeeded", "failed", "requires_action", "processing", "canceled"]
# Wallets a top-up can be paid with instead of a saved card (Stripe's payment method types).
Wallet = Literal["alipay", "wechat_pay"]
WALLETS: tuple[Wallet, ...] = ("alipay", "wechat_pay")


@dataclass(frozen=True, slots=True)
class CardInfo:
    brand: str  # visa | mastercard | amex | unionpay | discover | jcb | diners | unknown
    last4: str
    exp_month: int
    exp_year: int
    fingerprint: str  # the same card gives the same fingerprint
    country: str | None = None


@dataclass(frozen=True, slots=True)
class BillingDetails:
    name: str | None = None
    line1: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None


@dataclass(frozen=True, slots=True)
class SavedMethod:
    method_id: str  # pm_...
    customer_id: str  # cus_...
    card: CardInfo
    billing: BillingDetails = field(default_factory=BillingDetails)


@dataclass(frozen=True, slots=True)
class NextAction:
    """What the customer does to authorize a wallet payment: follow a redirect (Alipay), or
    scan a QR code with the wallet's app (WeChat Pay)."""

    type: Literal["redirect", "qr_code"]
    url: str | None = None  # redirect: where to send the browser; qr_code: a page showing it
    qr_data: str | None = None  # qr_code: the code's content
    qr_image_url: str | None = None  # qr_code: an image of it (https: or data: URL)


@dataclass(frozen=True, slots=True)
class Charge:
    """A payment attempt's outcome as the processor reports it (never from our metadata)."""

    status: ChargeStatus
    payment_id: str | None  # pi_... (None when refused before a payment object existed)
    amount_minor: int
    currency: str
    customer_id: str | None
    method_id: str | None
    decline_code: str | None = None  # insufficient_funds, generic_decline, expired_card, ...
    message: str | None = None  # the processor's message, safe to show
    client_secret: str | None = None  # for requires_action: the browser completes it
    next_action: NextAction | None = None  # a wallet payment waiting for the customer


@dataclass(frozen=True, slots=True)
class Refund:
    refund_id: str
    payment_id: str
    amount_minor: int
    status: Literal["succeeded", "pending", "failed"]


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A verified event. `payment` is re-read from the processor or taken from the signed
    payload; either way it is the processor's object, not something a client sent."""

    event_id: str
    type: str  # payment_intent.succeeded, payment_intent.payment_failed, charge.refunded, ...
    payment: Charge | None = None
    refunded_minor: int | None = None  # charge.refunded: total refunded so far
    dispute_id: str | None = None


class PaymentError(Exception):
    """The processor refused a request (not a decline, which is a Charge with status failed):
    bad card data, unknown method, an outage. `code` is Stripe's error code where there is one."""

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None,
                 decline_code: str | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.retryable = retryable


class WebhookSignatureError(Exception):
    """The webhook's signature is missing, wrong or too old."""


class PaymentProcessor(Protocol):
    name: str  # "sandbox" | "stripe"
    simulated: bool  # True for the sandbox: the dashboard shows a banner

    async def create_customer(self, *, organization_id: str, email: str | None) -> str:
        """A processor customer for the organization; returns its id."""
        ...

    async def attach_method(self, *, customer_id: str, method_id: str) -> SavedMethod:
        """Attach a tokenized payment method (from the browser) to the customer."""
        ...

    async def detach_method(self, *, method_id: str) -> None: ...

    async def verify_card(self, *, customer_id: str, method_id: str, amount_minor: int,
                          currency: str, idempotency_key: str) -> Charge:
        """Authorize `amount_minor` (manual capture) and cancel it at once: can the card hold
        it? Status succeeded (then canceled), failed with the decline code, or
        requires_action."""
        ...

    async def charge(self, *, customer_id: str, method_id: str, amount_minor: int,
                     currency: str, off_session: bool, idempotency_key: str,
                     description: str) -> Charge:
        """Charge a saved method. `idempotency_key` is sent to the processor: a retry with the
        same key returns the first result and never charges twice."""
        ...

    async def start_wallet_payment(self, *, customer_id: str, wallet: Wallet,
                                   amount_minor: int, currency: str, idempotency_key: str,
                                   description: str, return_url: str) -> Charge:
        """A payment the customer authorizes in their wallet: status requires_action with the
        next action (the browser comes back to `return_url` after a redirect), later
        succeeded (webhook, retrieve_payment) or failed. `idempotency_key` as for charge."""
        ...

    async def retrieve_payment(self, payment_id: str) -> Charge:
        """The processor's current view of a payment (reconciliation, webhooks)."""
        ...

    async def refund(self, *, payment_id: str, amount_minor: int | None,
                     idempotency_key: str) -> Refund: ...

    def verify_webhook(self, payload: bytes, signature_header: str | None) -> WebhookEvent:
        """Check the signature (Stripe's scheme: t=…,v1=HMAC-SHA256 of "t.payload", 5-minute
        tolerance) and parse the event; raise WebhookSignatureError otherwise."""
        ...

    async def receive_webhook(self, payload: bytes, signature_header: str | None
                              ) -> WebhookEvent:
        """verify_webhook, then the event's payment as the processor reports it now (events
        arrive late and out of order); what the webhook endpoint calls."""
        ...

    async def aclose(self) -> None:
        """Release connections (at shutdown)."""
        ...
