"""Binding a card ("Add payment details") and the organization's saved methods.

The browser tokenizes the card with the processor (Stripe.js, or the sandbox's endpoint);
Faregate receives only the payment-method id. Binding attaches it to the organization's
customer, then checks that the card can hold the verification amount ($5: an authorization
cancelled at once). Attempts are throttled per organization and per client address."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from faregate.audit import trail
from faregate.billing import risk
from faregate.billing.amounts import CURRENCY, nano_to_cents
from faregate.billing.customers import ensure_customer
from faregate.billing.messages import decline_message
from faregate.db.runner import Database
from faregate.db.schema import payment_methods
from faregate.errors import InvalidRequest, NotFound, PaymentRefused, PermissionDenied, RateLimited
from faregate.identity.access import require_member, require_owner
from faregate.kit.ids import new_id
from faregate.payments.processor import Charge, PaymentError, PaymentProcessor, SavedMethod
from faregate.throttle import limiter

CARD_ATTEMPTS_PER_ORG_PER_HOUR = 10
CARD_ATTEMPTS_PER_IP_PER_HOUR = 20


@dataclass(frozen=True, slots=True)
class MethodInfo:
    id: str
    processor: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    billing_country: str | None
    is_default: bool
    created_at: dt.datetime


def _info(r: sa.Row[tuple[object, ...]]) -> MethodInfo:
    m = r._mapping
    return MethodInfo(m["id"], m["processor"], m["brand"], m["last4"], m["exp_month"],
                      m["exp_year"], m["billing_country"], bool(m["is_default"]),
                      m["created_at"])


def list_methods(conn: sa.Connection, organization_id: str, *, user_id: str) -> list[MethodInfo]:
    require_member(conn, organization_id, user_id)
    rows = conn.execute(sa.select(payment_methods).where(
        payment_methods.c.organization_id == organization_id,
        payment_methods.c.removed_at.is_(None)).order_by(payment_methods.c.created_at))
    return [_info(r) for r in rows]


def get_method(conn: sa.Connection, organization_id: str, method_ref: str) -> tuple[str, str]:
    """(processor method id, processor) of an active saved method of the organization."""
    row = conn.execute(sa.select(payment_methods.c.method_id, payment_methods.c.processor)
                       .where(payment_methods.c.id == method_ref,
                              payment_methods.c.organization_id == organization_id,
                              payment_methods.c.removed_at.is_(None))).first()
    if row is None:
        raise NotFound("No such payment method.", param="payment_method_id")
    return str(row.method_id), str(row.processor)


def default_method(conn: sa.Connection, organization_id: str) -> str | None:
    found = conn.execute(sa.select(payment_methods.c.id).where(
        payment_methods.c.organization_id == organization_id,
        payment_methods.c.removed_at.is_(None))
        .order_by(payment_methods.c.is_default.desc(), payment_methods.c.created_at.desc())
        .limit(1)).scalar()
    return str(found) if found is not None else None


def _gate(conn: sa.Connection, organization_id: str, user_id: str, ip: str,
          secret: bytes) -> None:
    require_owner(conn, organization_id, user_id)
    limiter.gate(conn, limits=[("card_org", organization_id, CARD_ATTEMPTS_PER_ORG_PER_HOUR),
                               ("card_ip", ip, CARD_ATTEMPTS_PER_IP_PER_HOUR)],
                 window_s=3600, secret=secret, message="Too many attempts to add a card.")


async def _decide(db: Database, organization_id: str, ip: str, decision: str,
                  reason: str) -> None:
    await db.run(lambda conn: risk.record(conn, organization_id=organization_id, ip=ip,
                                          action="bind_card", decision=decision,
                                          reason=reason))


@dataclass(frozen=True, slots=True)
class PendingBinding:
    """The bank asks the cardholder to authenticate the $5 check (3-D Secure): the browser
    completes it with `client_secret`, then `confirm_method` finishes the binding."""

    method_id: str
    verification_id: str
    client_secret: str | None


async def add_method(db: Database, processor: PaymentProcessor, *, organization_id: str,
                     user_id: str, email: str | None, method_id: str, ip: str,
                     verification_nano: int, secret: bytes,
                     blocked_networks: tuple[str, ...] = (),
                     country_rule: risk.CountryRule | None = None
                     ) -> MethodInfo | PendingBinding:
    await db.run(require_owner, organization_id, user_id)
    if risk.network_blocked(ip, blocked_networks):
        await _decide(db, organization_id, ip, "block", "client address in a blocked network")
        raise PermissionDenied(risk.BLOCKED_NETWORK, code="risk_blocked")
    # Counted (and committed) before the processor is asked, so failures count too.
    try:
        await db.run(_gate, organization_id, user_id, ip, secret)
    except RateLimited:
        await _decide(db, organization_id, ip, "block", "too many card attempts")
        raise
    customer = await ensure_customer(db, processor, organization_id, email)
    try:
        saved = await processor.attach_method(customer_id=customer, method_id=method_id)
    except PaymentError as exc:
        await _decide(db, organization_id, ip, "block",
                      f"processor refused the card: {exc.decline_code or exc.code}")
        raise _refusal(exc) from None
    if country_rule is not None:
        await _check_country(db, processor, organization_id, ip, saved, country_rule)
    check = await processor.verify_card(
        customer_id=customer, method_id=saved.method_id,
        amount_minor=nano_to_cents(verification_nano), currency=CURRENCY,
        idempotency_key=f"verify:{saved.method_id}")
    if check.status == "requires_action" and check.payment_id is not None:
        await _decide(db, organization_id, ip, "review", "the bank asks for authentication")
        return PendingBinding(saved.method_id, check.payment_id, check.client_secret)
    return await _finish_binding(db, processor, organization_id, user_id, ip, saved, check)


async def _check_country(db: Database, processor: PaymentProcessor, organization_id: str,
                         ip: str, saved: SavedMethod, rule: risk.CountryRule) -> None:
    """Billing country against the client address's country, before the $5 check."""
    country = saved.billing.country
    # The table is read from disk once (and again when it changes): not on the event loop.
    why = await asyncio.to_thread(risk.country_mismatch, rule, ip, country)
    if why is None:
        return
    if rule.on_mismatch == "block":
        await processor.detach_method(method_id=saved.method_id)
        await _decide(db, organization_id, ip, "block", why)
        raise PermissionDenied(risk.country_blocked(country or ""),
                               code="risk_country_mismatch")
    await _decide(db, organization_id, ip, "review", why)


async def confirm_method(db: Database, processor: PaymentProcessor, *, organization_id: str,
                         user_id: str, email: str | None, method_id: str,
                         verification_id: str, ip: str) -> MethodInfo:
    """After the cardholder authenticated the $5 check: bind the card if it held it."""
    await db.run(require_owner, organization_id, user_id)
    customer = await ensure_customer(db, processor, organization_id, email)
    try:
        check = await processor.retrieve_payment(verification_id)
    except PaymentError:
        raise NotFound("No such card check.", param="verification_id") from None
    # The processor's record must say this card, of this organization's customer.
    if check.customer_id != customer or check.method_id != method_id:
        raise NotFound("No such card check.", param="verification_id")
    if check.status == "requires_action":
        raise PaymentRefused("The bank's authentication is not complete yet.",
                             code="authentication_required")
    saved = await processor.attach_method(customer_id=customer, method_id=method_id)
    return await _finish_binding(db, processor, organization_id, user_id, ip, saved, check)


async def _finish_binding(db: Database, processor: PaymentProcessor, organization_id: str,
                          user_id: str, ip: str, saved: SavedMethod,
                          check: Charge) -> MethodInfo:
    held = check.status in ("succeeded", "canceled") and check.decline_code is None
    if not held:
        await processor.detach_method(method_id=saved.method_id)
        await _decide(db, organization_id, ip, "block",
                      f"card check failed: {check.decline_code or check.status}")
        raise PaymentRefused(
            f"{decline_message(check.decline_code, check.message)} (A card must be able to "
            "hold a $5 authorization.)", code=check.decline_code or "card_declined")

    def store(conn: sa.Connection) -> MethodInfo:
        info = _store(conn, processor.name, organization_id, user_id, saved, ip)
        risk.record(conn, organization_id=organization_id, ip=ip, action="bind_card",
                    decision="allow", reason=f"{saved.card.brand} {saved.card.last4} held the "
                                             "verification amount")
        return info
    return await db.run(store)


def _refusal(exc: PaymentError) -> InvalidRequest | PaymentRefused:
    if exc.decline_code or exc.code in ("card_declined", "expired_card", "incorrect_cvc",
                                        "processing_error", "incorrect_number"):
        return PaymentRefused(decline_message(exc.decline_code or exc.code, exc.message),
                              code=exc.decline_code or exc.code or "card_declined")
    return InvalidRequest(exc.message, param=exc.param or "payment_method_id",
                          code=exc.code or "invalid_payment_method")


def _store(conn: sa.Connection, processor: str, organization_id: str, user_id: str,
           saved: SavedMethod, ip: str) -> MethodInfo:
    dup = conn.execute(sa.select(payment_methods.c.id).where(
        payment_methods.c.organization_id == organization_id,
        payment_methods.c.fingerprint == saved.card.fingerprint,
        payment_methods.c.removed_at.is_(None))).scalar()
    if dup is not None:
        raise InvalidRequest("This card is already saved.", param="payment_method_id",
                             code="duplicate_card")
    first = conn.execute(sa.select(sa.func.count()).select_from(payment_methods).where(
        payment_methods.c.organization_id == organization_id,
        payment_methods.c.removed_at.is_(None))).scalar_one() == 0
    ref = new_id("card")
    conn.execute(payment_methods.insert().values(
        id=ref, organization_id=organization_id, processor=processor,
        method_id=saved.method_id, brand=saved.card.brand, last4=saved.card.last4,
        exp_month=saved.card.exp_month, exp_year=saved.card.exp_year,
        fingerprint=saved.card.fingerprint, billing_country=saved.billing.country,
        billing_postal_code=saved.billing.postal_code, is_default=first, created_by=user_id,
        created_at=dt.datetime.now(dt.UTC)))
    trail.record(conn, action="payment_method.added", actor=f"user:{user_id}", target=ref,
                 organization_id=organization_id, ip=ip,
                 detail={"brand": saved.card.brand, "last4": saved.card.last4})
    row = conn.execute(sa.select(payment_methods).where(payment_methods.c.id == ref)).one()
    return _info(row)


def remove_method(conn: sa.Connection, organization_id: str, method_ref: str, *, user_id: str,
                  ip: str | None) -> str:
    """Forget a saved method; returns the processor's id so the caller can detach it."""
    require_owner(conn, organization_id, user_id)
    method_id, _ = get_method(conn, organization_id, method_ref)
    conn.execute(payment_methods.update().where(payment_methods.c.id == method_ref)
                 .values(removed_at=dt.datetime.now(dt.UTC), is_default=False))
    trail.record(conn, action="payment_method.removed", actor=f"user:{user_id}",
                 target=method_ref, organization_id=organization_id, ip=ip)
    return method_id
