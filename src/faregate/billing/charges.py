"""Charging a saved card: top-ups (by an owner) and auto-recharges (by the worker).

Every attempt is written before the processor is called, and its id is the processor's
idempotency key: a crash and a retry cannot charge twice. A client's `Idempotency-Key` is
honoured with Stripe's semantics: the same key returns the first result, the same key with
other parameters is refused, and a duplicate that arrives while the first is running gets 409.
A success credits the organization once (keyed on the processor's payment id) and restarts the
failure count; a decline counts, and enough consecutive ones suspend billing."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlencode

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from faregate.billing import state
from faregate.billing.amounts import CURRENCY, nano_to_cents
from faregate.billing.customers import ensure_customer
from faregate.billing.methods import get_method
from faregate.billing.settle import payment_succeeded
from faregate.db.runner import Database
from faregate.db.schema import charge_attempts
from faregate.errors import Conflict, InvalidRequest, NotFound
from faregate.identity.access import require_owner
from faregate.kit.ids import new_id
from faregate.ledger.accounts import balance, org_account_id
from faregate.payments.processor import (
    WALLETS,
    Charge,
    NextAction,
    PaymentError,
    PaymentProcessor,
    Wallet,
)

Kind = Literal["topup", "auto_recharge"]


@dataclass(frozen=True, slots=True)
class Attempt:
    id: str
    organization_id: str
    kind: str
    payment_method_id: str | None
    amount_nano: int
    status: str
    payment_id: str | None
    decline_code: str | None
    message: str | None
    created_at: dt.datetime
    credited: bool
    balance_after_nano: int | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    failures_to_suspend: int
    reinstate_on_payment: bool


@dataclass(frozen=True, slots=True)
class Outcome:
    attempt: Attempt
    suspended_now: bool = False  # this failure suspended billing (email the owners)
    replayed: bool = False  # an Idempotency-Key replay of an earlier request
    client_secret: str | None = None  # requires_action: the browser authenticates with it
    next_action: NextAction | None = None  # a wallet payment: what the customer does next


def _attempt(r: sa.Row[tuple[object, ...]]) -> Attempt:
    m = r._mapping
    return Attempt(m["id"], m["organization_id"], m["kind"], m["payment_method_id"],
                   int(m["amount_nano"]), m["status"], m["payment_id"], m["decline_code"],
                   m["message"], m["created_at"], m["credited_at"] is not None)


def get_attempt(conn: sa.Connection, attempt_id: str) -> Attempt:
    return _attempt(conn.execute(sa.select(charge_attempts)
                                 .where(charge_attempts.c.id == attempt_id)).one())


def list_attempts(conn: sa.Connection, organization_id: str, *, limit: int = 100) -> list[Attempt]:
    rows = conn.execute(sa.select(charge_attempts)
                        .where(charge_attempts.c.organization_id == organization_id)
                        .order_by(charge_attempts.c.created_at.desc()).limit(limit))
    return [_attempt(r) for r in rows]


def _request_hash(kind: str, amount_nano: int, method_ref: str) -> str:
    return hashlib.sha256(f"{kind}:{amount_nano}:{method_ref}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class _Started:
    attempt_id: str
    method_id: str
    replay: Attempt | None


def _start(conn: sa.Connection, *, processor: str, organization_id: str, kind: Kind,
           amount_nano: int, method_ref: str, client_key: str | None,
           user_id: str | None) -> _Started:
    """Write the attempt (pending) before the processor is called. `method_ref` is a saved
    card's id, or a wallet's name (alipay, wechat_pay) for a payment with no saved method."""
    method_id: str = method_ref
    if method_ref not in WALLETS:
        method_id, method_processor = get_method(conn, organization_id, method_ref)
        if method_processor != processor:
            raise InvalidRequest("This card was saved with another payment processor; add "
                                 "it again.", param="payment_method_id")
    digest = _request_hash(kind, amount_nano, method_ref)
    now = dt.datetime.now(dt.UTC)
    attempt_id = new_id("ch")
    try:
        with conn.begin_nested():
            conn.execute(charge_attempts.insert().values(
                id=attempt_id, organization_id=organization_id, processor=processor, kind=kind,
                payment_method_id=method_ref, amount_nano=amount_nano,
                amount_minor=nano_to_cents(amount_nano), currency=CURRENCY, status="pending",
                client_key=client_key, request_hash=digest, created_by=user_id,
                created_at=now, updated_at=now))
    except IntegrityError:
        prior = conn.execute(sa.select(charge_attempts).where(
            charge_attempts.c.organization_id == organization_id,
            charge_attempts.c.client_key == client_key)).first()
        if prior is None:
            raise
        if prior.request_hash != digest:
            raise InvalidRequest("Keys for idempotent requests can only be used with the same "
                                 "parameters they were first used with.",
                                 param="Idempotency-Key", code="idempotency_key_reused") from None
        if prior.status == "pending":
            raise Conflict("A request with this Idempotency-Key is still in progress; retry "
                           "shortly.", code="idempotency_in_progress") from None
        return _Started(prior.id, method_id, _attempt(prior))
    return _Started(attempt_id, method_id, None)


def _finish(conn: sa.Connection, *, processor: str, attempt_id: str, charge: Charge | None,
            error: PaymentError | None, policy: Policy) -> Outcome:
    row = conn.execute(sa.select(charge_attempts).where(charge_attempts.c.id == attempt_id)
                       .with_for_update()).one()
    org = row.organization_id
    now = dt.datetime.now(dt.UTC)
    suspended_now = False
    if charge is not None:
        status = charge.status
        values: dict[str, object] = {"status": status, "payment_id": charge.payment_id,
                                     "decline_code": charge.decline_code,
                                     "message": charge.message, "updated_at": now}
        if status == "succeeded":
            payment_succeeded(conn, processor=processor, charge=charge, organization_id=org,
                              reinstate=policy.reinstate_on_payment)
            values["credited_at"] = row.credited_at or now
        elif status == "failed" and row.status in ("pending", "requires_action") \
                and row.payment_method_id not in WALLETS:  # only saved cards count
            suspended_now = state.record_failed_charge(
                conn, org, threshold=policy.failures_to_suspend,
                reason=charge.decline_code or "declined")
        conn.execute(charge_attempts.update().where(charge_attempts.c.id == attempt_id)
                     .values(**values))
    else:
        assert error is not None
        # The processor refused the request itself (not a decline of the card): it does not
        # count towards suspension. An outage leaves the attempt pending for reconciliation.
        if not error.retryable:
            conn.execute(charge_attempts.update().where(charge_attempts.c.id == attempt_id)
                         .values(status="error", decline_code=error.code,
                                 message=error.message[:300], updated_at=now))
    attempt = get_attempt(conn, attempt_id)
    bal = balance(conn, org_account_id(conn, org)).balance_nano
    waiting = charge is not None and charge.status == "requires_action"
    return Outcome(dataclasses.replace(attempt, balance_after_nano=bal), suspended_now,
                   client_secret=charge.client_secret if waiting and charge else None,
                   next_action=charge.next_action if waiting and charge else None)


async def charge_saved_card(db: Database, processor: PaymentProcessor, *, organization_id: str,
                            kind: Kind, amount_nano: int, method_ref: str,
                            client_key: str | None, user_id: str | None,
                            email: str | None, policy: Policy) -> Outcome:
    started = await db.run(lambda conn: _start(
        conn, processor=processor.name, organization_id=organization_id, kind=kind,
        amount_nano=amount_nano, method_ref=method_ref, client_key=client_key,
        user_id=user_id))
    if started.replay is not None:
        return Outcome(started.replay, replayed=True)
    return await _charge(db, processor, started.attempt_id, organization_id, started.method_id,
                         amount_nano, kind, email, policy)


async def _charge(db: Database, processor: PaymentProcessor, attempt_id: str,
                  organization_id: str, method_id: str, amount_nano: int, kind: str,
                  email: str | None, policy: Policy) -> Outcome:
    customer = await ensure_customer(db, processor, organization_id, email)
    charge: Charge | None = None
    error: PaymentError | None = None
    try:
        charge = await processor.charge(
            customer_id=customer, method_id=method_id, amount_minor=nano_to_cents(amount_nano),
            currency=CURRENCY, off_session=kind == "auto_recharge", idempotency_key=attempt_id,
            description=charge_description(kind))
    except PaymentError as exc:
        error = exc
    return await db.run(lambda conn: _finish(conn, processor=processor.name,
                                             attempt_id=attempt_id, charge=charge, error=error,
                                             policy=policy))


def charge_description(kind: str) -> str:
    return f"Faregate credit ({kind.replace('_', '-')})"


async def top_up(db: Database, processor: PaymentProcessor, *, organization_id: str,
                 user_id: str, email: str | None, amount_nano: int, method_ref: str,
                 client_key: str | None, policy: Policy) -> Outcome:
    await db.run(require_owner, organization_id, user_id)
    return await charge_saved_card(db, processor, organization_id=organization_id,
                                   kind="topup", amount_nano=amount_nano, method_ref=method_ref,
                                   client_key=client_key, user_id=user_id, email=email,
                                   policy=policy)


async def wallet_top_up(db: Database, processor: PaymentProcessor, *, organization_id: str,
                        user_id: str, email: str | None, amount_nano: int, wallet: Wallet,
                        client_key: str | None, policy: Policy, return_base: str) -> Outcome:
    """A top-up paid with Alipay or WeChat Pay: the attempt waits (requires_action, with the
    next action) until the customer authorizes it in the wallet; the webhook or a refresh then
    credits it, once. The customer comes back to `return_base?top_up=<attempt id>`."""
    await db.run(require_owner, organization_id, user_id)
    started = await db.run(lambda conn: _start(
        conn, processor=processor.name, organization_id=organization_id, kind="topup",
        amount_nano=amount_nano, method_ref=wallet, client_key=client_key, user_id=user_id))
    if started.replay is not None:
        return Outcome(started.replay, replayed=True)
    attempt_id = started.attempt_id
    customer = await ensure_customer(db, processor, organization_id, email)
    charge: Charge | None = None
    error: PaymentError | None = None
    try:
        charge = await processor.start_wallet_payment(
            customer_id=customer, wallet=wallet, amount_minor=nano_to_cents(amount_nano),
            currency=CURRENCY, idempotency_key=attempt_id,
            description=charge_description("topup"),
            return_url=f"{return_base}?{urlencode({'top_up': attempt_id})}")
    except PaymentError as exc:
        error = exc
    return await db.run(lambda conn: _finish(conn, processor=processor.name,
                                             attempt_id=attempt_id, charge=charge, error=error,
                                             policy=policy))


async def refresh_attempt(db: Database, processor: PaymentProcessor, *, organization_id: str,
                          user_id: str, attempt_id: str, policy: Policy) -> Outcome:
    """After the cardholder authenticated (3-D Secure): read the payment from the processor
    and finish the attempt (credit it, or count the failure)."""
    def load(conn: sa.Connection) -> Attempt:
        require_owner(conn, organization_id, user_id)
        row = conn.execute(sa.select(charge_attempts).where(
            charge_attempts.c.id == attempt_id,
            charge_attempts.c.organization_id == organization_id)).first()
        if row is None:
            raise NotFound("No such payment attempt.")
        return _attempt(row)
    attempt = await db.run(load)
    if attempt.status not in ("requires_action", "pending") or attempt.payment_id is None:
        return Outcome(attempt)
    charge = await processor.retrieve_payment(attempt.payment_id)
    return await db.run(lambda conn: _finish(conn, processor=processor.name,
                                             attempt_id=attempt_id, charge=charge, error=None,
                                             policy=policy))


def stale_attempts(conn: sa.Connection, *, older_than_s: int = 60,
                   newer_than_s: int = 86400) -> list[tuple[str, str, str | None, int, str]]:
    """Pending attempts a crash or an outage left behind: (id, org, method ref, amount, kind)."""
    now = dt.datetime.now(dt.UTC)
    rows = conn.execute(sa.select(
        charge_attempts.c.id, charge_attempts.c.organization_id,
        charge_attempts.c.payment_method_id, charge_attempts.c.amount_nano,
        charge_attempts.c.kind)
        .where(charge_attempts.c.status == "pending",
               charge_attempts.c.created_at < now - dt.timedelta(seconds=older_than_s),
               charge_attempts.c.created_at > now - dt.timedelta(seconds=newer_than_s)))
    return [(r[0], r[1], r[2], int(r[3]), r[4]) for r in rows]


async def reconcile(db: Database, processor: PaymentProcessor, policy: Policy) -> int:
    """Finish attempts left pending: ask again with the same idempotency key, which returns the
    payment made the first time (or makes it, if the first call never reached the processor)."""
    done = 0
    for attempt_id, org, method_ref, amount, kind in await db.run(stale_attempts):
        # A wallet payment left pending never reached its customer (the next action is only
        # in our answer), so nothing can have been paid: there is nothing to finish.
        if method_ref is None or method_ref in WALLETS:
            continue
        method_id, _ = await db.run(get_method, org, method_ref)
        await _charge(db, processor, attempt_id, org, method_id, amount, kind, None, policy)
        done += 1
    return done
