"""What operators do to organizations and users: grant, adjust and refund credit; deactivate and
reactivate; reset a phone number; issue redemption codes.

Every action runs in the caller's transaction and appends one audit event (audit.changes) with
the actor, the target (`org:ID` / `user:ID`), what changed from what to what, and the reason.
Amounts are integers in nano-USD; nothing secret is recorded (codes by their last characters,
phone numbers masked). Money moves only as ledger transfers: a grant or an adjustment is one
transfer with its reason; a refund to the card goes through billing/refunds.py, as the CLI's."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from faregate.audit.changes import record_change
from faregate.billing import redemption
from faregate.billing.refunds import organization_of_payment, owed, refund_payment
from faregate.console.notes import org_target, user_target
from faregate.console.views import org_balance, require_org, require_user
from faregate.db.runner import Database
from faregate.db.schema import organizations, users
from faregate.errors import InvalidRequest, NotFound, Refused
from faregate.identity import sessions
from faregate.kit.money import nano_to_usd
from faregate.ledger.accounts import GRANTS, Balance, account_id, lock_available, org_account_id
from faregate.ledger.lots import open_lot
from faregate.ledger.transfers import Transfer, grant, post_transfer
from faregate.payments.processor import PaymentProcessor

MAX_REASON_CHARS = 500
ADJUSTMENT = "adjustment"


@dataclass(frozen=True, slots=True)
class CreditChange:
    transfer: Transfer
    before: Balance
    after: Balance
    replayed: bool = False  # the idempotency key's first transfer, returned again


@dataclass(frozen=True, slots=True)
class RefundDone:
    payment_id: str
    before: Balance
    after: Balance
    owed_nano: int  # what the organization owes after the refund (credit already spent)


@dataclass(frozen=True, slots=True)
class Activation:
    """An organization's or user's deactivation state after an action."""

    id: str
    deactivated_at: dt.datetime | None
    reason: str | None


def _reason(reason: str) -> str:
    text = reason.strip()
    if not text or len(text) > MAX_REASON_CHARS:
        raise InvalidRequest(f"Give a reason of 1 to {MAX_REASON_CHARS} characters.",
                             param="reason", code="reason_required")
    return text


def _money(b: Balance, owed_nano: int | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {"balance_nano": b.balance_nano, "available_nano": b.available_nano}
    if owed_nano is not None:
        view["owed_nano"] = owed_nano
    return view


def _record_credit(conn: sa.Connection, action: str, organization_id: str, change: CreditChange,
                   *, actor: str, ip: str | None, detail: dict[str, Any]) -> None:
    if change.replayed:
        return  # a replay of an idempotent request: nothing changed, nothing to record
    record_change(conn, actor=actor, action=action, target=org_target(organization_id),
                  before=_money(change.before), after=_money(change.after), ip=ip,
                  organization_id=organization_id,
                  detail={"transfer_id": change.transfer.id, **detail})


def grant_credit(conn: sa.Connection, organization_id: str, amount_nano: int, *, reason: str,
                 actor: str, ip: str | None = None, idempotency_key: str | None = None,
                 expires_at: dt.datetime | None = None) -> CreditChange:
    """Promotional credit from the platform's grants account (ledger.transfers.grant): used
    before paid credit, expiring at `expires_at` if given."""
    text = _reason(reason)
    require_org(conn, organization_id)
    before, started = org_balance(conn, organization_id), dt.datetime.now(dt.UTC)
    transfer = grant(conn, organization_id, amount_nano, actor=actor, reason=text,
                     idempotency_key=idempotency_key, expires_at=expires_at)
    change = CreditChange(transfer, before, org_balance(conn, organization_id),
                          transfer.created_at < started)
    _record_credit(conn, "credit.granted", organization_id, change, actor=actor, ip=ip,
                   detail={"amount_nano": amount_nano, "reason": text,
                           "expires_at": expires_at})
    return change


def adjust_credit(conn: sa.Connection, organization_id: str, amount_nano: int, *, reason: str,
                  actor: str, ip: str | None = None,
                  idempotency_key: str | None = None) -> CreditChange:
    """Correct a balance by `amount_nano` (positive adds, negative takes away), against the
    platform's grants account. Taking away never goes below what is available (the balance
    less what requests in flight hold): the guarded transfer refuses, and we say by how much.
    Added credit is a promotional lot that does not expire (a correction should not
    lapse)."""
    text = _reason(reason)
    if amount_nano == 0:
        raise InvalidRequest("An adjustment is a positive or negative amount, not 0.",
                             param="amount_usd")
    require_org(conn, organization_id)
    acct = org_account_id(conn, organization_id)
    grants = account_id(conn, GRANTS)
    before, started = org_balance(conn, organization_id), dt.datetime.now(dt.UTC)
    if amount_nano > 0:
        transfer = post_transfer(conn, debit_account_id=grants, credit_account_id=acct,
                                 amount_nano=amount_nano, kind=ADJUSTMENT, actor=actor,
                                 reason=text, idempotency_key=idempotency_key)
        open_lot(conn, transfer, kind="promotional")
    else:
        available = lock_available(conn, acct)
        try:  # a replay returns its first transfer, whatever the balance is now
            transfer = post_transfer(conn, debit_account_id=acct, credit_account_id=grants,
                                     amount_nano=-amount_nano, kind=ADJUSTMENT, actor=actor,
                                     reason=text, idempotency_key=idempotency_key)
        except Refused:
            if -amount_nano <= available:
                raise
            raise Refused(f"Only ${nano_to_usd(max(0, available))} is available; an "
                          "adjustment cannot take the balance below what is available.",
                          param="amount_usd", code="insufficient_balance") from None
    change = CreditChange(transfer, before, org_balance(conn, organization_id),
                          transfer.created_at < started)
    _record_credit(conn, "credit.adjusted", organization_id, change, actor=actor, ip=ip,
                   detail={"amount_nano": amount_nano, "reason": text})
    return change


async def refund_to_card(db: Database, processor: PaymentProcessor, *, organization_id: str,
                         payment_id: str, amount_nano: int | None, reason: str,
                         idempotency_key: str, actor: str,
                         ip: str | None = None) -> RefundDone:
    """Refund a top-up of this organization to the card (all of it, or `amount_nano`) by the
    payments refund path (billing.refunds.refund_payment): the processor refunds, the credit
    comes back off the balance, and what was already spent is owed. The audit event records
    the balance and what is owed as read just before and just after."""
    text = _reason(reason)

    def check(conn: sa.Connection) -> tuple[Balance, int]:
        require_org(conn, organization_id)
        if organization_of_payment(conn, payment_id) != organization_id:
            raise NotFound(f"No payment {payment_id!r} of this organization has been credited.",
                           param="payment_id", code="payment_not_found")
        return org_balance(conn, organization_id), owed(conn, organization_id)
    before, owed_before = await db.run(check)
    owed_after = await refund_payment(db, processor, payment_id=payment_id,
                                      amount_nano=amount_nano, actor=actor,
                                      idempotency_key=idempotency_key)

    def record(conn: sa.Connection) -> RefundDone:
        after = org_balance(conn, organization_id)
        now_owed = owed(conn, organization_id)
        record_change(conn, actor=actor, action="credit.refunded",
                      target=org_target(organization_id), before=_money(before, owed_before),
                      after=_money(after, now_owed), ip=ip, organization_id=organization_id,
                      detail={"payment_id": payment_id, "amount_nano": amount_nano,
                              "reason": text, "idempotency_key": idempotency_key,
                              "owed_by_refund_nano": owed_after})
        return RefundDone(payment_id, before, after, now_owed)
    return await db.run(record)


def _activation_view(at: dt.datetime | None, reason: str | None) -> dict[str, Any]:
    return {"deactivated": at is not None, "deactivated_reason": reason}


def set_org_active(conn: sa.Connection, organization_id: str, *, active: bool, reason: str,
                   actor: str, ip: str | None = None) -> Activation:
    """Deactivate (/v1 then answers 401 account_deactivated for every key of the
    organization within the key cache's 2 s) or reactivate an organization."""
    text = _reason(reason)
    row = require_org(conn, organization_id)
    was_at, was_reason = row._mapping["deactivated_at"], row._mapping["deactivated_reason"]
    if active == (was_at is None):
        raise Refused("This organization is already " + ("active." if active else
                      "deactivated."), code="already_active" if active
                      else "already_deactivated")
    at = None if active else dt.datetime.now(dt.UTC)
    stored = None if active else text
    conn.execute(organizations.update().where(organizations.c.id == organization_id)
                 .values(deactivated_at=at, deactivated_reason=stored))
    record_change(conn, actor=actor, action="org.reactivated" if active else "org.deactivated",
                  target=org_target(organization_id),
                  before=_activation_view(was_at, was_reason), after=_activation_view(at, stored),
                  ip=ip, organization_id=organization_id, detail={"reason": text})
    return Activation(organization_id, at, stored)


def set_user_active(conn: sa.Connection, user_id: str, *, active: bool, reason: str,
                    actor: str, ip: str | None = None) -> Activation:
    """Deactivate a user (they cannot sign in, their sessions end now, and the keys they
    created answer 401 account_deactivated) or reactivate them."""
    text = _reason(reason)
    row = require_user(conn, user_id)
    m = row._mapping
    was_at, was_reason = m["deactivated_at"], m["deactivated_reason"]
    if active == (was_at is None):
        raise Refused("This user is already " + ("active." if active else "deactivated."),
                      code="already_active" if active else "already_deactivated")
    at = None if active else dt.datetime.now(dt.UTC)
    stored = None if active else text
    conn.execute(users.update().where(users.c.id == user_id)
                 .values(deactivated_at=at, deactivated_reason=stored))
    ended = 0 if active else sessions.revoke_all(conn, user_id)
    record_change(conn, actor=actor,
                  action="user.reactivated" if active else "user.deactivated",
                  target=user_target(user_id), before=_activation_view(was_at, was_reason),
                  after=_activation_view(at, stored), ip=ip,
                  organization_id=m["organization_id"],
                  detail={"reason": text, "sessions_ended": ended})
    return Activation(user_id, at, stored)


def reset_phone(conn: sa.Connection, user_id: str, *, reason: str, actor: str,
                ip: str | None = None) -> None:
    """Forget a user's verified phone number (they verify one again before making keys); the
    number becomes free for another account. Keys they already have keep working."""
    text = _reason(reason)
    row = require_user(conn, user_id)
    m = row._mapping
    before = {"phone_masked": m["phone_masked"],
              "phone_verified": m["phone_verified_at"] is not None}
    conn.execute(users.update().where(users.c.id == user_id)
                 .values(phone_hash=None, phone_masked=None, phone_verified_at=None))
    record_change(conn, actor=actor, action="user.phone_reset", target=user_target(user_id),
                  before=before, after={"phone_masked": None, "phone_verified": False}, ip=ip,
                  organization_id=m["organization_id"], detail={"reason": text})


def issue_codes(conn: sa.Connection, *, amount_nano: int, count: int,
                expires_at: dt.datetime | None, actor: str, secret: bytes,
                ip: str | None = None) -> list[str]:
    """Redemption codes (billing/redemption.py), returned once; the audit event names them by
    their last characters only."""
    codes = redemption.issue_codes(conn, amount_nano=amount_nano, count=count,
                                   expires_at=expires_at, actor=actor, secret=secret)
    record_change(conn, actor=actor, action="codes.issued", target="redemption_codes",
                  before=None, after={"count": count, "amount_nano": amount_nano,
                                      "expires_at": expires_at,
                                      "ends_with": [c[-4:] for c in codes]}, ip=ip)
    return codes
