"""StripeProcessor against localstripe, through a small "Stripe edge" that adds what localstripe
lacks: Stripe's idempotency layer, today's API parameters, and canned Stripe-shaped answers for
what localstripe cannot produce (issuer decline codes, off-session `authentication_required`,
5xx/429). Webhook events are signed here with Stripe's scheme, or by localstripe itself."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
import pytest
import pytest_asyncio
import stripe
from aiohttp import web

from faregate.payments.processor import PaymentError, WebhookSignatureError
from faregate.payments.stripe import StripeProcessor

# Async tests share the module loop with the processor fixture that closes its HTTP session.
aio = pytest.mark.asyncio(loop_scope="module")

API_KEY = "sk_test_faregate"
WEBHOOK_SECRET = "whsec_faregate_test"

# localstripe's own `start()` listens on every interface ("::") and pickles its store to the
# fixed /tmp/localstripe.pickle on each write; run its app on loopback with the dump disabled.
LOCALSTRIPE = """
import sys
from aiohttp import web
from localstripe import resources, server
resources.Store.dump_to_disk = lambda self: None
web.run_app(server.app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _http(method: str, url: str, data: dict[str, str] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, method=method,
                                 data=urlencode(data).encode() if data is not None else None,
                                 headers={"Authorization": f"Bearer {API_KEY}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@pytest.fixture(scope="module")
def localstripe_url() -> Iterator[str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log, subprocess.Popen(
            [sys.executable, "-c", LOCALSTRIPE, str(port)],
            stdout=log, stderr=subprocess.STDOUT) as proc:
        try:
            deadline = time.monotonic() + 20
            while not _answers(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"localstripe did not start: {log.read()[-2000:]!r}")
                time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _answers(url: str) -> bool:
    try:
        return _http("GET", f"{url}/v1/customers")[0] == 200
    except OSError:
        return False


@dataclass
class Sent:
    method: str
    path: str
    form: dict[str, str]
    idempotency_key: str | None


@dataclass
class StripeEdge:
    """A loopback proxy to localstripe, on its own thread and event loop."""

    upstream: str
    url: str = ""
    sent: list[Sent] = field(default_factory=list)
    hooks: list[tuple[bytes, str | None]] = field(default_factory=list)
    _canned: dict[tuple[str, str], tuple[int, dict[str, Any]]] = field(default_factory=dict)
    _replies: dict[str, tuple[str, bytes, int, bytes]] = field(default_factory=dict)

    def inject(self, method: str, path: str, status: int, body: dict[str, Any]) -> None:
        """Answer the next `method path` with this, before the idempotency layer (as a
        load balancer or a test double of Stripe would), so it is never replayed."""
        self._canned[(method, path)] = (status, body)

    def posts(self, path: str) -> list[Sent]:
        return [s for s in self.sent if s.method == "POST" and s.path == path]

    async def _hook(self, request: web.Request) -> web.Response:
        self.hooks.append((await request.read(), request.headers.get("Stripe-Signature")))
        return web.Response()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        pairs = parse_qsl(body.decode(), keep_blank_values=True)
        key = request.headers.get("Idempotency-Key")
        self.sent.append(Sent(request.method, request.path, dict(pairs), key))
        canned = self._canned.pop((request.method, request.path), None)
        if canned is not None:
            return web.json_response(canned[1], status=canned[0])
        if request.method == "POST" and key is not None and key in self._replies:
            path, first_body, status, payload = self._replies[key]
            if (path, first_body) != (request.path, body):
                return web.json_response({"error": {
                    "type": "idempotency_error",
                    "message": "Keys for idempotent requests can only be used with the same "
                               "parameters they were first used with."}}, status=400)
            return web.Response(body=payload, status=status, content_type="application/json")
        # localstripe predates these: it refuses `description` on PaymentIntents and knows
        # `allowed_payment_method_types` only under its old name.
        forwarded = [(k.replace("allowed_payment_method_types[", "payment_method_types["), v)
                     for k, v in pairs if k != "description"]
        async with self._session.request(
                request.method, self.upstream + request.path_qs, data=urlencode(forwarded),
                headers={"Authorization": request.headers.get("Authorization", ""),
                         "Content-Type": "application/x-www-form-urlencoded"}) as r:
            status, payload = r.status, await r.read()
        if request.method == "POST" and key is not None:
            self._replies[key] = (request.path, body, status, payload)
        return web.Response(body=payload, status=status, content_type="application/json")

    def start(self) -> None:
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._loop = asyncio.new_event_loop()
        started = threading.Event()

        async def serve() -> None:
            self._session = aiohttp.ClientSession()
            app = web.Application()
            app.router.add_post("/hooks", self._hook)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", port).start()
            started.set()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.create_task(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert started.wait(10)

    def stop(self) -> None:
        async def cleanup() -> None:
            await self._runner.cleanup()
            await self._session.close()

        asyncio.run_coroutine_threadsafe(cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture(scope="module")
def edge(localstripe_url: str) -> Iterator[StripeEdge]:
    e = StripeEdge(localstripe_url)
    e.start()
    # localstripe signs and sends its own payment_intent.* events to this endpoint.
    assert _http("POST", f"{localstripe_url}/_config/webhooks/faregate",
                 {"url": f"{e.url}/hooks", "secret": WEBHOOK_SECRET})[0] == 200
    yield e
    e.stop()


@pytest.fixture(scope="module")
def ls(localstripe_url: str) -> stripe.StripeClient:
    """A plain client straight to localstripe, for setting up and checking from the side."""
    return stripe.StripeClient(API_KEY, base_addresses={"api": localstripe_url},
                               max_network_retries=0)


@pytest_asyncio.fixture(loop_scope="module")
async def processor(edge: StripeEdge) -> AsyncIterator[StripeProcessor]:
    p = StripeProcessor(api_key=API_KEY, webhook_secret=WEBHOOK_SECRET, api_base=edge.url,
                        max_network_retries=0)
    yield p
    await p.aclose()


def card(ls: stripe.StripeClient, number: str, **billing: Any) -> str:
    """A tokenized card, as Stripe.js would hand the browser (raw numbers only in tests)."""
    params: dict[str, Any] = {"type": "card", "card": {
        "number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}
    if billing:
        params["billing_details"] = billing
    return ls.v1.payment_methods.create(params).id  # type: ignore[arg-type]


async def saved(p: StripeProcessor, ls: stripe.StripeClient, number: str) -> tuple[str, str]:
    customer = await p.create_customer(organization_id="org_1", email=None)
    method = await p.attach_method(customer_id=customer, method_id=card(ls, number))
    return customer, method.method_id


def authenticate(localstripe_url: str, payment_id: str, client_secret: str) -> int:
    """What the customer does in the browser: localstripe's 3DS stand-in."""
    return _http("POST", f"{localstripe_url}/v1/payment_intents/{payment_id}/_authenticate",
                 {"client_secret": client_secret, "success": "true"})[0]


def stripe_intent(**fields: Any) -> dict[str, Any]:
    """A PaymentIntent as current Stripe serializes it (the fields we read)."""
    return {"id": "pi_3Stripe", "object": "payment_intent", "amount": 1500, "currency": "usd",
            "status": "succeeded", "customer": "cus_Stripe", "payment_method": "pm_Stripe",
            "client_secret": "pi_3Stripe_secret_abc", "last_payment_error": None,
            "latest_charge": "ch_3Stripe", **fields}


# --- customers and payment methods


@aio
async def test_create_customer_tags_the_organization(
        processor: StripeProcessor, ls: stripe.StripeClient) -> None:
    customer_id = await processor.create_customer(organization_id="org_42", email="a@b.example")
    customer = ls.v1.customers.retrieve(customer_id)
    assert customer_id.startswith("cus_")
    assert customer.metadata is not None
    assert customer.metadata["organization_id"] == "org_42"
    assert customer.email == "a@b.example"


@aio
async def test_attach_returns_the_card_and_billing_details(
        processor: StripeProcessor, ls: stripe.StripeClient) -> None:
    customer = await processor.create_customer(organization_id="org_1", email=None)
    pm = card(ls, "4242424242424242", name="Ada Lovelace",
              address={"line1": "1 Analytical St", "city": "London", "state": "LDN",
                       "postal_code": "N1 9GU", "country": "GB"})
    method = await processor.attach_method(customer_id=customer, method_id=pm)
    assert (method.method_id, method.customer_id) == (pm, customer)
    assert (method.card.brand, method.card.last4) == ("visa", "4242")
    assert (method.card.exp_month, method.card.exp_year) == (12, 2034)
    assert method.card.country == "FR"  # localstripe says FR for every card
    assert method.billing.name == "Ada Lovelace"
    assert (method.billing.line1, method.billing.city, method.billing.state,
            method.billing.postal_code, method.billing.country) == (
        "1 Analytical St", "London", "LDN", "N1 9GU", "GB")
    assert ls.v1.payment_methods.retrieve(pm).customer == customer

    same = await processor.attach_method(customer_id=customer,
                                         method_id=card(ls, "4242424242424242"))
    other = await processor.attach_method(customer_id=customer,
                                          method_id=card(ls, "5555555555554444"))
    assert same.card.fingerprint == method.card.fingerprint
    assert other.card.fingerprint != method.card.fingerprint
    assert same.billing.name is None and same.billing.line1 is None  # no address sent


@aio
async def test_attaching_a_declining_card_is_refused(
        processor: StripeProcessor, ls: stripe.StripeClient) -> None:
    customer = await processor.create_customer(organization_id="org_1", email=None)
    with pytest.raises(PaymentError) as caught:
        await processor.attach_method(customer_id=customer,
                                      method_id=card(ls, "4000000000000002"))
    assert caught.value.code == "card_declined"
    assert not caught.value.retryable


@aio
async def test_attaching_an_unknown_method_is_refused(processor: StripeProcessor) -> None:
    customer = await processor.create_customer(organization_id="org_1", email=None)
    with pytest.raises(PaymentError) as caught:
        await processor.attach_method(customer_id=customer, method_id="pm_missing")
    assert not caught.value.retryable


@aio
async def test_detach(processor: StripeProcessor, ls: stripe.StripeClient) -> None:
    _, pm = await saved(processor, ls, "4242424242424242")
    await processor.detach_method(method_id=pm)
    assert ls.v1.payment_methods.retrieve(pm).customer is None


# --- charges


@aio
async def test_on_session_charge_succeeds(processor: StripeProcessor, ls: stripe.StripeClient,
                                          edge: StripeEdge) -> None:
    customer, pm = await saved(processor, ls, "4242424242424242")
    charge = await processor.charge(customer_id=customer, method_id=pm, amount_minor=1234,
                                    currency="usd", off_session=False, idempotency_key="k-on-1",
                                    description="Faregate top-up")
    assert charge.status == "succeeded"
    assert charge.payment_id is not None and charge.payment_id.startswith("pi_")
    assert (charge.amount_minor, charge.currency) == (1234, "usd")
    assert (charge.customer_id, charge.method_id) == (customer, pm)
    assert charge.decline_code is None and charge.client_secret is None
    sent = edge.posts("/v1/payment_intents")[-1]
    assert sent.idempotency_key == "k-on-1"
    assert sent.form["confirm"] == "true" and sent.form["off_session"] == "false"
    assert sent.form["description"] == "Faregate top-up"
    assert sent.form["allowed_payment_method_types[0]"] == "card"
    assert ls.v1.payment_intents.retrieve(charge.payment_id).status == "succeeded"
    assert await processor.retrieve_payment(charge.payment_id) == charge


@aio
async def test_off_session_charge_succeeds(processor: StripeProcessor, ls: stripe.StripeClient,
                                           edge: StripeEdge) -> None:
    customer, pm = await saved(processor, ls, "4242424242424242")
    charge = await processor.charge(customer_id=customer, method_id=pm, amount_minor=2000,
                                    currency="usd", off_session=True, idempotency_key="k-off-1",
                                    description="Auto-recharge")
    assert charge.status == "succeeded"
    assert edge.posts("/v1/payment_intents")[-1].form["off_session"] == "true"


@aio
async def test_charge_declined_after_attaching(processor: StripeProcessor,
                                               ls: stripe.StripeClient) -> None:
    customer, pm = await saved(processor, ls, "4000000000000341")  # attaches, then declines
    charge = await processor.charge(customer_id=customer, method_id=pm, amount_minor=500,
                                    currency="usd", off_session=True, idempotency_key="k-dec-1",
                                    description="Auto-recharge")
    assert charge.status == "failed"
    assert charge.decline_code == "card_declined"  # localstripe sends no issuer decline_code
    assert charge.message == "Your card was declined."
    assert (charge.amount_minor, charge.customer_id, charge.method_id) == (500, customer, pm)
    # localstripe names only the charge in the error; the intent is found through it
    assert charge.payment_id is not None and charge.payment_id.startswith("pi_")
    again = await processor.retrieve_payment(charge.payment_id)
    assert (again.status, again.decline_code) == ("failed", "card_declined")


@aio
async def test_issuer_decline_code_and_intent_come_from_the_error(
        processor: StripeProcessor, edge: StripeEdge) -> None:
    edge.inject("POST", "/v1/payment_intents", 402, {"error": {
        "type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
        "message": "Your card has insufficient funds.", "charge": "ch_3Stripe",
        "payment_intent": stripe_intent(status="requires_payment_method")}})
    charge = await processor.charge(customer_id="cus_Stripe", method_id="pm_Stripe",
                                    amount_minor=1500, currency="usd", off_session=True,
                                    idempotency_key="k-insuf", description="Auto-recharge")
    assert (charge.status, charge.decline_code) == ("failed", "insufficient_funds")
    assert charge.payment_id == "pi_3Stripe"
    assert charge.message == "Your card has insufficient funds."
    assert charge.client_secret is None


@aio
async def test_off_session_authentication_required_as_stripe_answers_it(
        processor: StripeProcessor, edge: StripeEdge) -> None:
    """Stripe declines an off-session payment that needs 3DS with HTTP 402; billing must see
    that the customer can still authenticate it, with the intent's client secret."""
    intent = stripe_intent(status="requires_payment_method", last_payment_error={
        "type": "card_error", "code": "authentication_required",
        "decline_code": "authentication_required"})
    edge.inject("POST", "/v1/payment_intents", 402, {"error": {
        "type": "card_error", "code": "authentication_required",
        "decline_code": "authentication_required", "payment_intent": intent,
        "message": "Your card was declined. This transaction requires authentication."}})
    charge = await processor.charge(customer_id="cus_Stripe", method_id="pm_Stripe",
                                    amount_minor=1500, currency="usd", off_session=True,
                                    idempotency_key="k-3ds", description="Auto-recharge")
    assert charge.status == "requires_action"
    assert charge.decline_code == "authentication_required"
    assert (charge.payment_id, charge.client_secret) == ("pi_3Stripe", "pi_3Stripe_secret_abc")
    # the same intent read back later (reconciliation, webhook) says the same
    edge.inject("GET", "/v1/payment_intents/pi_3Stripe", 200, intent)
    later = await processor.retrieve_payment("pi_3Stripe")
    assert (later.status, later.decline_code) == ("requires_action", "authentication_required")
    assert later.client_secret == "pi_3Stripe_secret_abc"


@aio
async def test_off_session_authentication_required_on_localstripe(
        processor: StripeProcessor, ls: stripe.StripeClient, localstripe_url: str) -> None:
    """localstripe leaves the intent in requires_action instead of declining it."""
    customer, pm = await saved(processor, ls, "4000002760003184")  # always authenticate
    charge = await processor.charge(customer_id=customer, method_id=pm, amount_minor=700,
                                    currency="usd", off_session=True, idempotency_key="k-3ds-ls",
                                    description="Auto-recharge")
    assert charge.status == "requires_action"
    assert charge.decline_code == "authentication_required"
    assert charge.payment_id is not None and charge.client_secret is not None
    assert charge.client_secret.startswith(charge.payment_id + "_secret_")
    assert authenticate(localstripe_url, charge.payment_id, charge.client_secret) == 200
    done = await processor.retrieve_payment(charge.payment_id)
    assert (done.status, done.amount_minor, done.decline_code) == ("succeeded", 700, None)


@aio
async def test_on_session_charge_needing_authentication(processor: StripeProcessor,
                                                        ls: stripe.StripeClient) -> None:
    customer, pm = await saved(processor, ls, "4000002500003155")
    charge = await processor.charge(customer_id=customer, method_id=pm, amount_minor=900,
                                    currency="usd", off_session=False, idempotency_key="k-3ds-on",
                                    description="Faregate top-up")
    assert charge.status == "requires_action"
    assert charge.decline_code is None  # nothing was declined: the customer is here
    assert charge.client_secret is not None


@aio
async def test_decline_after_authentication_reads_back_as_failed(
        processor: StripeProcessor, ls: stripe.StripeClient, localstripe_url: str) -> None:
    customer, pm = await saved(processor, ls, "4000008260003178")
    charge = await processor.charge(customer_id=customer, method_id=pm, amount_minor=800,
                                    currency="usd", off_session=False, idempotency_key="k-3178",
                                    description="Faregate top-up")
    assert charge.status == "requires_action"
    assert charge.payment_id is not None and charge.client_secret is not None
    assert authenticate(localstripe_url, charge.payment_id, charge.client_secret) == 402
    failed = await processor.retrieve_payment(charge.payment_id)
    assert (failed.status, failed.decline_code) == ("failed", "card_declined")
    assert failed.client_secret is None


# --- card verification


@aio
async def test_verify_card_authorizes_and_releases(
        processor: StripeProcessor, ls: stripe.StripeClient, edge: StripeEdge) -> None:
    customer, pm = await saved(processor, ls, "4242424242424242")
    result = await processor.verify_card(customer_id=customer, method_id=pm, amount_minor=100,
                                         currency="usd", idempotency_key="k-verify")
    assert result.status == "succeeded"
    assert result.payment_id is not None
    assert edge.posts("/v1/payment_intents")[-1].form["capture_method"] == "manual"
    cancel = edge.posts(f"/v1/payment_intents/{result.payment_id}/cancel")
    assert [c.idempotency_key for c in cancel] == ["k-verify:cancel"]
    assert ls.v1.payment_intents.retrieve(result.payment_id).status == "canceled"


@aio
async def test_verify_card_declined(processor: StripeProcessor,
                                    ls: stripe.StripeClient) -> None:
    customer, pm = await saved(processor, ls, "4000000000000341")
    result = await processor.verify_card(customer_id=customer, method_id=pm, amount_minor=100,
                                         currency="usd", idempotency_key="k-verify-dec")
    assert (result.status, result.decline_code) == ("failed", "card_declined")


@aio
async def test_verify_card_needing_authentication_is_canceled_after(
        processor: StripeProcessor, ls: stripe.StripeClient, localstripe_url: str) -> None:
    customer, pm = await saved(processor, ls, "4000002760003184")
    result = await processor.verify_card(customer_id=customer, method_id=pm, amount_minor=100,
                                         currency="usd", idempotency_key="k-verify-3ds")
    assert result.status == "requires_action"
    assert result.payment_id is not None and result.client_secret is not None
    assert authenticate(localstripe_url, result.payment_id, result.client_secret) == 200
    held = await processor.retrieve_payment(result.payment_id)
    assert held.status == "processing"  # authorized, not captured: no money yet
    released = await processor.cancel_payment(result.payment_id, idempotency_key="k-rel")
    assert released.status == "canceled"


# --- refunds


@aio
async def test_refunds(processor: StripeProcessor, ls: stripe.StripeClient) -> None:
    customer, pm = await saved(processor, ls, "4242424242424242")
    charge = await processor.charge(customer_id=customer, method_id=pm, amount_minor=3000,
                                    currency="usd", off_session=False, idempotency_key="k-ref",
                                    description="Faregate top-up")
    assert charge.payment_id is not None
    part = await processor.refund(payment_id=charge.payment_id, amount_minor=1000,
                                  idempotency_key="k-ref-1")
    assert part.refund_id.startswith("re_")
    assert (part.payment_id, part.amount_minor, part.status) == (
        charge.payment_id, 1000, "succeeded")
    retried = await processor.refund(payment_id=charge.payment_id, amount_minor=1000,
                                     idempotency_key="k-ref-1")
    assert retried == part
    rest = await processor.refund(payment_id=charge.payment_id, amount_minor=None,
                                  idempotency_key="k-ref-2")
    assert rest.refund_id != part.refund_id
    intent = ls.v1.payment_intents.retrieve(charge.payment_id, {"expand": ["latest_charge"]})
    assert isinstance(intent.latest_charge, stripe.Charge)
    # The Refund reports the amount Stripe refunded, not the one asked for. localstripe's
    # "refund the rest" refunds the full 3000 again (Stripe would refund the remaining 2000).
    assert rest.amount_minor == 3000
    assert intent.latest_charge.amount_refunded == 4000


@aio
async def test_refunding_a_failed_payment_is_refused(processor: StripeProcessor,
                                                     ls: stripe.StripeClient) -> None:
    customer, pm = await saved(processor, ls, "4000000000000341")
    charge = await processor.charge(customer_id=customer, method_id=pm, amount_minor=500,
                                    currency="usd", off_session=True, idempotency_key="k-rf",
                                    description="Auto-recharge")
    assert charge.payment_id is not None
    with pytest.raises(PaymentError, match="failed payment") as caught:
        await processor.refund(payment_id=charge.payment_id, amount_minor=None,
                               idempotency_key="k-rf-1")
    assert not caught.value.retryable


# --- idempotency and errors


@aio
async def test_same_key_same_payment(processor: StripeProcessor, ls: stripe.StripeClient,
                                     edge: StripeEdge) -> None:
    customer, pm = await saved(processor, ls, "4242424242424242")
    args: dict[str, Any] = dict(customer_id=customer, method_id=pm, amount_minor=4200,
                                currency="usd", off_session=True, description="Auto-recharge")
    first = await processor.charge(idempotency_key="k-same", **args)
    second = await processor.charge(idempotency_key="k-same", **args)
    other = await processor.charge(idempotency_key="k-other", **args)
    assert first == second and first.status == "succeeded"
    assert other.payment_id != first.payment_id
    sent = [s.idempotency_key for s in edge.posts("/v1/payment_intents")]
    assert sent.count("k-same") == 2
    intents = ls.v1.payment_intents.list({"limit": 100}).data
    assert sum(i.customer == customer for i in intents) == 2  # one per key, not per call


@aio
async def test_key_reused_with_other_params_is_refused(processor: StripeProcessor,
                                                       ls: stripe.StripeClient) -> None:
    customer, pm = await saved(processor, ls, "4242424242424242")
    await processor.charge(customer_id=customer, method_id=pm, amount_minor=100, currency="usd",
                           off_session=True, idempotency_key="k-mis", description="x")
    with pytest.raises(PaymentError) as caught:
        await processor.charge(customer_id=customer, method_id=pm, amount_minor=999,
                               currency="usd", off_session=True, idempotency_key="k-mis",
                               description="x")
    assert caught.value.code == "idempotency_error"
    assert not caught.value.retryable


@aio
@pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True), (429, True),
                                                   (400, False), (403, False)])
async def test_refusals_say_whether_to_retry(processor: StripeProcessor, edge: StripeEdge,
                                             status: int, retryable: bool) -> None:
    edge.inject("GET", "/v1/payment_intents/pi_x", status, {"error": {
        "type": "api_error" if status >= 500 else "invalid_request_error",
        "code": "some_code", "message": "Nope."}})
    with pytest.raises(PaymentError) as caught:
        await processor.retrieve_payment("pi_x")
    assert caught.value.retryable is retryable
    assert caught.value.message == "Nope."


@aio
async def test_sdk_retries_reuse_the_key(edge: StripeEdge, ls: stripe.StripeClient) -> None:
    p = StripeProcessor(api_key=API_KEY, webhook_secret=WEBHOOK_SECRET, api_base=edge.url,
                        max_network_retries=1)
    try:
        customer, pm = await saved(p, ls, "4242424242424242")
        edge.inject("POST", "/v1/payment_intents", 503, {"error": {"type": "api_error",
                                                                   "message": "Down."}})
        charge = await p.charge(customer_id=customer, method_id=pm, amount_minor=100,
                                currency="usd", off_session=True, idempotency_key="k-retry",
                                description="Auto-recharge")
    finally:
        await p.aclose()
    assert charge.status == "succeeded"
    assert [s.idempotency_key for s in edge.posts("/v1/payment_intents")][-2:] == [
        "k-retry", "k-retry"]


@aio
async def test_unreachable_stripe_is_retryable() -> None:
    p = StripeProcessor(api_key=API_KEY, webhook_secret=WEBHOOK_SECRET,
                        api_base=f"http://127.0.0.1:{_free_port()}", max_network_retries=0)
    try:
        with pytest.raises(PaymentError) as caught:
            await p.retrieve_payment("pi_x")
    finally:
        await p.aclose()
    assert caught.value.retryable


@aio
async def test_a_bad_key_is_not_retryable(edge: StripeEdge) -> None:
    p = StripeProcessor(api_key="pk_not_secret", webhook_secret=WEBHOOK_SECRET,
                        api_base=edge.url, max_network_retries=0)
    try:
        with pytest.raises(PaymentError) as caught:
            await p.create_customer(organization_id="org_1", email=None)
    finally:
        await p.aclose()
    assert not caught.value.retryable
    assert "pk_not_secret" not in repr(p)


def test_secrets_are_required() -> None:
    with pytest.raises(ValueError, match="webhook signing secret"):
        StripeProcessor(api_key=API_KEY, webhook_secret="")


# --- webhooks


@pytest.fixture
def verifier() -> StripeProcessor:
    """For signature checks alone: they send no request, so there is no session to close."""
    return StripeProcessor(api_key=API_KEY, webhook_secret=WEBHOOK_SECRET,
                           api_base="http://127.0.0.1:9")


def sign(payload: bytes, *, secret: str = WEBHOOK_SECRET, t: int | None = None) -> str:
    """Stripe's scheme, computed here rather than by the SDK under test."""
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def event(type_: str, obj: dict[str, Any], event_id: str = "evt_1") -> bytes:
    return json.dumps({"id": event_id, "object": "event", "type": type_, "created": 1,
                       "livemode": False, "api_version": "2026-10-28.endive",
                       "data": {"object": obj}}).encode()


def test_signer_matches_the_reference_vector() -> None:
    payload = b'{"id":"evt_test","object":"event","type":"payment_intent.succeeded"}'
    assert sign(payload, secret="whsec_test_secret", t=1700000000) == (
        "t=1700000000,v1=f457ee3d89f52f9f02936e1cd1173dd5dfa132cdc78ec55ea964a53098c5a1c0")


def test_payment_event_is_mapped(verifier: StripeProcessor) -> None:
    payload = event("payment_intent.succeeded", stripe_intent(), "evt_ok")
    got = verifier.verify_webhook(payload, sign(payload))
    assert (got.event_id, got.type) == ("evt_ok", "payment_intent.succeeded")
    assert got.payment is not None
    assert (got.payment.status, got.payment.payment_id, got.payment.amount_minor,
            got.payment.currency, got.payment.customer_id, got.payment.method_id) == (
        "succeeded", "pi_3Stripe", 1500, "usd", "cus_Stripe", "pm_Stripe")


def test_failed_payment_event_carries_the_decline(verifier: StripeProcessor) -> None:
    payload = event("payment_intent.payment_failed", stripe_intent(
        status="requires_payment_method", last_payment_error={
            "code": "card_declined", "decline_code": "insufficient_funds",
            "message": "Your card has insufficient funds."}))
    got = verifier.verify_webhook(payload, sign(payload))
    assert got.payment is not None
    assert (got.payment.status, got.payment.decline_code, got.payment.message) == (
        "failed", "insufficient_funds", "Your card has insufficient funds.")


@pytest.mark.parametrize("type_", ["charge.succeeded", "charge.refunded"])
def test_charge_events_are_mapped(verifier: StripeProcessor, type_: str) -> None:
    payload = event(type_, {"id": "ch_1", "object": "charge", "amount": 1500,
                            "amount_refunded": 600, "currency": "usd", "status": "succeeded",
                            "payment_intent": "pi_3Stripe", "customer": "cus_Stripe",
                            "payment_method": "pm_Stripe", "failure_code": None,
                            "failure_message": None})
    got = verifier.verify_webhook(payload, sign(payload))
    assert got.type == type_ and got.refunded_minor == 600
    assert got.payment is not None
    assert (got.payment.payment_id, got.payment.status, got.payment.amount_minor) == (
        "pi_3Stripe", "succeeded", 1500)


@pytest.mark.parametrize("type_", ["charge.dispute.created", "charge.dispute.closed"])
def test_dispute_events_are_mapped(verifier: StripeProcessor, type_: str) -> None:
    payload = event(type_, {"id": "dp_1", "object": "dispute", "amount": 1500,
                            "currency": "usd", "charge": "ch_1", "payment_intent": "pi_3Stripe",
                            "status": "needs_response", "reason": "fraudulent"})
    got = verifier.verify_webhook(payload, sign(payload))
    assert got.dispute_id == "dp_1"
    assert got.payment is not None and got.payment.payment_id == "pi_3Stripe"


def test_other_events_pass_without_a_payment(verifier: StripeProcessor) -> None:
    payload = event("customer.created", {"id": "cus_1", "object": "customer"}, "evt_other")
    got = verifier.verify_webhook(payload, sign(payload))
    assert (got.event_id, got.type, got.payment, got.dispute_id) == (
        "evt_other", "customer.created", None, None)


def test_rolled_secret_signatures(verifier: StripeProcessor) -> None:
    payload = event("customer.created", {"id": "cus_1", "object": "customer"})
    t = int(time.time())
    old = sign(payload, secret="whsec_old", t=t).split(",")[1]
    assert verifier.verify_webhook(payload, f"t={t},{old},{sign(payload, t=t).split(',')[1]}")


def test_recent_timestamp_is_accepted(verifier: StripeProcessor) -> None:
    payload = event("customer.created", {"id": "cus_1", "object": "customer"})
    assert verifier.verify_webhook(payload, sign(payload, t=int(time.time()) - 280))


def _tampered() -> tuple[bytes, str]:
    signed = event("payment_intent.succeeded", stripe_intent())
    return signed.replace(b'"amount": 1500', b'"amount": 150000'), sign(signed)


@pytest.mark.parametrize(("case", "reason"), [
    ("wrong secret", "matching"),
    ("tampered payload", "matching"),
    ("stale timestamp", "tolerance"),
    ("no header", "No Stripe-Signature"),
    ("only v0", "expected scheme"),
    ("garbage header", "extract"),
    ("not json", "not a Stripe event"),
])
def test_bad_webhooks_are_refused(verifier: StripeProcessor, case: str, reason: str) -> None:
    payload = event("payment_intent.succeeded", stripe_intent())
    header: str | None
    if case == "wrong secret":
        header = sign(payload, secret="whsec_someone_else")
    elif case == "tampered payload":
        payload, header = _tampered()
        assert payload != event("payment_intent.succeeded", stripe_intent())
    elif case == "stale timestamp":
        header = sign(payload, t=int(time.time()) - 310)
    elif case == "no header":
        header = None
    elif case == "only v0":
        header = sign(payload).replace("v1=", "v0=")
    elif case == "garbage header":
        header = "v1=deadbeef"
    else:
        payload = b"not json at all"
        header = sign(payload)
    with pytest.raises(WebhookSignatureError, match=reason):
        verifier.verify_webhook(payload, header)


@aio
async def test_localstripe_webhook_is_verified_and_refreshed(
        processor: StripeProcessor, ls: stripe.StripeClient, edge: StripeEdge) -> None:
    customer, pm = await saved(processor, ls, "4242424242424242")
    charge = await processor.charge(customer_id=customer, method_id=pm, amount_minor=2500,
                                    currency="usd", off_session=True, idempotency_key="k-wh",
                                    description="Auto-recharge")

    def delivered() -> tuple[bytes, str | None] | None:
        for body, sig in edge.hooks:
            sent = json.loads(body)
            if (sent["type"] == "payment_intent.succeeded"
                    and sent["data"]["object"]["id"] == charge.payment_id):
                return body, sig
        return None

    deadline = time.monotonic() + 10  # localstripe waits 1 s before sending
    while (hook := delivered()) is None and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert hook is not None
    got = processor.verify_webhook(*hook)
    assert got.type == "payment_intent.succeeded"
    assert got.payment == charge
    assert await processor.refresh_event(got) == got


@aio
async def test_refresh_takes_stripe_over_the_snapshot(
        processor: StripeProcessor, ls: stripe.StripeClient) -> None:
    customer, pm = await saved(processor, ls, "4242424242424242")
    charge = await processor.charge(customer_id=customer, method_id=pm, amount_minor=2500,
                                    currency="usd", off_session=True, idempotency_key="k-fresh",
                                    description="Auto-recharge")
    assert charge.payment_id is not None
    stale = event("payment_intent.payment_failed", stripe_intent(
        id=charge.payment_id, amount=1, status="requires_payment_method",
        last_payment_error={"code": "card_declined"}))
    got = await processor.refresh_event(processor.verify_webhook(stale, sign(stale)))
    assert got.payment == charge

    await processor.refund(payment_id=charge.payment_id, amount_minor=700,
                           idempotency_key="k-fresh-r")
    refunded = event("charge.refunded", {
        "id": "ch_x", "object": "charge", "amount": 2500, "amount_refunded": 0,
        "currency": "usd", "status": "succeeded", "payment_intent": charge.payment_id})
    got = await processor.refresh_event(processor.verify_webhook(refunded, sign(refunded)))
    assert got.refunded_minor == 700
