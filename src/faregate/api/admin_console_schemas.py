"""Request and response bodies of the console's users, organizations, notes and audit search
(/admin/api). Money goes in as decimal USD strings and comes out as exact nano-USD plus the
same as a decimal string."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from faregate.api_keys.service import KeyInfo
from faregate.audit.trail import AuditEvent
from faregate.console import search, views
from faregate.console.actions import Activation, CreditChange
from faregate.console.notes import MAX_NOTE_CHARS, Note
from faregate.errors import InvalidRequest
from faregate.kit.money import MoneyFormatError, nano_to_usd, usd_to_nano
from faregate.ledger.accounts import Balance
from faregate.ledger.history import Entry
from faregate.usage.report import Sums

_REASON = Field(min_length=1, max_length=500, description="Why; recorded in the audit trail "
                "(and on the ledger transfer, for credit).")


def utc(t: dt.datetime | None) -> dt.datetime | None:
    """A time given without an offset is UTC."""
    return t.replace(tzinfo=dt.UTC) if t is not None and t.tzinfo is None else t


def parse_usd(text: str, param: str = "amount_usd") -> int:
    try:
        return usd_to_nano(text)
    except MoneyFormatError:
        raise InvalidRequest("Enter an amount in dollars, like 10 or -2.50.",
                             param=param) from None


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MoneyOut(BaseModel):
    nano_usd: int
    usd: str

    @classmethod
    def of(cls, nano: int) -> MoneyOut:
        return cls(nano_usd=nano, usd=nano_to_usd(nano))


class BalanceOut(BaseModel):
    balance: MoneyOut = Field(description="Credits less what was spent.")
    available: MoneyOut = Field(description="The balance less what requests in flight hold.")

    @classmethod
    def of(cls, b: Balance) -> BalanceOut:
        return cls(balance=MoneyOut.of(b.balance_nano), available=MoneyOut.of(b.available_nano))


class DeactivationOut(BaseModel):
    at: dt.datetime
    reason: str | None


def _deactivation(d: views.Deactivation | None) -> DeactivationOut | None:
    return DeactivationOut(at=d.at, reason=d.reason) if d is not None else None


# --- search -----------------------------------------------------------------------------------

class UserHitOut(BaseModel):
    id: str
    email: str
    organization_id: str
    created_at: dt.datetime
    deactivated: bool

    @classmethod
    def of(cls, u: search.UserHit) -> UserHitOut:
        return cls(id=u.id, email=u.email, organization_id=u.organization_id,
                   created_at=u.created_at, deactivated=u.deactivated_at is not None)


class UserSearchOut(BaseModel):
    data: list[UserHitOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: "
                                    "this is the last.")


class OrgHitOut(BaseModel):
    id: str
    name: str
    created_at: dt.datetime
    deactivated: bool
    members: int

    @classmethod
    def of(cls, o: search.OrgHit) -> OrgHitOut:
        return cls(id=o.id, name=o.name, created_at=o.created_at,
                   deactivated=o.deactivated_at is not None, members=o.members)


class OrgSearchOut(BaseModel):
    data: list[OrgHitOut]
    next_cursor: str | None


# --- overviews --------------------------------------------------------------------------------

class EntryOut(BaseModel):
    id: int
    created_at: dt.datetime
    kind: str
    amount: MoneyOut = Field(description="Positive: credited to the organization; negative: "
                             "debited.")
    reason: str | None
    actor: str

    @classmethod
    def of(cls, e: Entry) -> EntryOut:
        return cls(id=e.id, created_at=e.created_at, kind=e.kind,
                   amount=MoneyOut.of(e.amount_nano), reason=e.reason, actor=e.actor)


class LedgerPageOut(BaseModel):
    data: list[EntryOut]
    next_before: int | None = Field(description="Pass as `before` for older entries.")


class UsageOut(BaseModel):
    days: int
    requests: int
    failed_requests: int
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    cost: MoneyOut
    charged: MoneyOut

    @classmethod
    def of(cls, s: Sums | None, days: int) -> UsageOut:
        s = s or Sums(0, 0, 0, 0, 0, 0, 0, 0)
        return cls(days=days, requests=s.requests, failed_requests=s.failed_requests,
                   input_tokens=s.input_tokens, cached_tokens=s.cached_tokens,
                   output_tokens=s.output_tokens, cost=MoneyOut.of(s.cost_nano),
                   charged=MoneyOut.of(s.charged_nano))


class PaymentMethodOut(BaseModel):
    id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    is_default: bool


class KeyOut(BaseModel):
    id: str
    name: str
    redacted: str
    kind: str
    project_id: str | None
    created_by: str | None
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None

    @classmethod
    def of(cls, k: KeyInfo) -> KeyOut:
        return cls(id=k.id, name=k.name, redacted=k.redacted, kind=k.kind,
                   project_id=k.project_id, created_by=k.created_by, created_at=k.created_at,
                   last_used_at=k.last_used_at, revoked_at=k.revoked_at)


class RiskOut(BaseModel):
    created_at: dt.datetime
    action: str
    decision: str
    reason: str


class MemberOut(BaseModel):
    user_id: str
    email: str
    role: str
    joined_at: dt.datetime
    deactivated: bool


class NoteOut(BaseModel):
    id: str
    target: str
    organization_id: str | None
    operator_id: str
    body: str
    created_at: dt.datetime

    @classmethod
    def of(cls, n: Note) -> NoteOut:
        return cls(id=n.id, target=n.target, organization_id=n.organization_id,
                   operator_id=n.operator_id, body=n.body, created_at=n.created_at)


class AuditEventOut(BaseModel):
    id: int
    created_at: dt.datetime
    action: str
    actor: str
    target: str | None
    organization_id: str | None
    ip: str | None
    before: dict[str, Any] | None = Field(description="The changed fields before the action "
                                          "(null: created, or not a change).")
    after: dict[str, Any] | None
    detail: dict[str, Any] | None = Field(description="Anything else recorded (reason, "
                                          "amounts, ids).")

    @classmethod
    def of(cls, e: AuditEvent) -> AuditEventOut:
        detail = dict(e.detail or {})
        before, after = detail.pop("before", None), detail.pop("after", None)
        return cls(id=e.id, created_at=e.created_at, action=e.action, actor=e.actor,
                   target=e.target, organization_id=e.organization_id, ip=e.ip, before=before,
                   after=after, detail=detail or None)


class AuditSearchOut(BaseModel):
    data: list[AuditEventOut]
    next_cursor: int | None = Field(description="Pass as `cursor` for older events.")


class OrgOverviewOut(BaseModel):
    id: str
    name: str
    created_at: dt.datetime
    deactivated: DeactivationOut | None
    tier: int
    tier_override: int | None
    price_group: str | None
    balance: BalanceOut
    owed: MoneyOut = Field(description="What refunds or disputes took back beyond the balance.")
    billing_suspended_reason: str | None
    ledger: list[EntryOut] = Field(description="The newest ledger entries (more: /ledger).")
    usage: UsageOut
    payment_methods: list[PaymentMethodOut]
    keys: list[KeyOut]
    risk_decisions: list[RiskOut]
    members: list[MemberOut]
    notes: list[NoteOut]
    audit: list[AuditEventOut]

    @classmethod
    def of(cls, o: views.OrgOverview) -> OrgOverviewOut:
        return cls(
            id=o.id, name=o.name, created_at=o.created_at,
            deactivated=_deactivation(o.deactivation), tier=o.tier,
            tier_override=o.tier_override, price_group=o.price_group,
            balance=BalanceOut.of(o.balance), owed=MoneyOut.of(o.owed_nano),
            billing_suspended_reason=o.suspended_reason,
            ledger=[EntryOut.of(e) for e in o.ledger],
            usage=UsageOut.of(o.usage_30d, views.USAGE_DAYS),
            payment_methods=[PaymentMethodOut(id=m.id, brand=m.brand, last4=m.last4,
                                              exp_month=m.exp_month, exp_year=m.exp_year,
                                              is_default=m.is_default)
                             for m in o.payment_methods],
            keys=[KeyOut.of(k) for k in o.keys],
            risk_decisions=[RiskOut(created_at=r.created_at, action=r.action,
                                    decision=r.decision, reason=r.reason)
                            for r in o.risk_decisions],
            members=[MemberOut(user_id=m.user_id, email=m.email, role=m.role,
                               joined_at=m.joined_at, deactivated=m.deactivated)
                     for m in o.members],
            notes=[NoteOut.of(n) for n in o.notes],
            audit=[AuditEventOut.of(e) for e in o.audit])


class UserOrgOut(BaseModel):
    id: str
    name: str
    role: str
    personal: bool


class UserOverviewOut(BaseModel):
    id: str
    email: str
    created_at: dt.datetime
    email_verified: bool
    phone_masked: str | None = Field(description="The verified number, masked; null: none.")
    phone_verified_at: dt.datetime | None
    personal_organization_id: str
    organizations: list[UserOrgOut]
    deactivated: DeactivationOut | None
    active_sessions: int
    notes: list[NoteOut]
    audit: list[AuditEventOut]

    @classmethod
    def of(cls, u: views.UserOverview) -> UserOverviewOut:
        return cls(
            id=u.id, email=u.email, created_at=u.created_at, email_verified=u.email_verified,
            phone_masked=u.phone_masked, phone_verified_at=u.phone_verified_at,
            personal_organization_id=u.personal_organization_id,
            organizations=[UserOrgOut(id=o.id, name=o.name, role=o.role, personal=o.personal)
                           for o in u.organizations],
            deactivated=_deactivation(u.deactivation), active_sessions=u.active_sessions,
            notes=[NoteOut.of(n) for n in u.notes],
            audit=[AuditEventOut.of(e) for e in u.audit])


# --- actions ----------------------------------------------------------------------------------

class GrantIn(Body):
    amount_usd: str = Field(max_length=30, description='Positive, e.g. "2" or "0.50".')
    reason: str = _REASON
    expires_at: dt.datetime | None = Field(default=None, description="When the granted credit "
                                           "expires; default never.")
    idempotency_key: str | None = Field(default=None, max_length=150, description="Repeating "
                                        "the request with the same key grants once.")


class AdjustIn(Body):
    amount_usd: str = Field(max_length=30, description='Positive adds, negative takes away '
                            '(never below what is available), e.g. "-1".')
    reason: str = _REASON
    idempotency_key: str | None = Field(default=None, max_length=150)


class CreditChangeOut(BaseModel):
    transfer_id: int
    kind: str
    amount: MoneyOut = Field(description="Signed: what the organization's balance changed by.")
    before: BalanceOut
    after: BalanceOut

    @classmethod
    def of(cls, c: CreditChange, organization_credited: bool) -> CreditChangeOut:
        amount = c.transfer.amount_nano if organization_credited else -c.transfer.amount_nano
        return cls(transfer_id=c.transfer.id, kind=c.transfer.kind, amount=MoneyOut.of(amount),
                   before=BalanceOut.of(c.before), after=BalanceOut.of(c.after))


class RefundIn(Body):
    payment_id: str = Field(max_length=80, description="The top-up's payment (pi_…).")
    amount_usd: str | None = Field(default=None, max_length=30, description="Part of the "
                                   "payment, in whole cents; default all of it.")
    reason: str = _REASON
    idempotency_key: str = Field(min_length=1, max_length=150, description="Repeating the "
                                 "request with the same key refunds once.")


class RefundOut(BaseModel):
    payment_id: str
    before: BalanceOut
    after: BalanceOut
    owed: MoneyOut = Field(description="What the organization owes now (credit it had already "
                           "spent); billing stays suspended until a payment settles it.")


class ReasonIn(Body):
    reason: str = _REASON


class ActivationOut(BaseModel):
    id: str
    deactivated: DeactivationOut | None

    @classmethod
    def of(cls, a: Activation) -> ActivationOut:
        return cls(id=a.id, deactivated=DeactivationOut(at=a.deactivated_at, reason=a.reason)
                   if a.deactivated_at is not None else None)


class CodesIn(Body):
    amount_usd: str = Field(max_length=30, description="The value of each code.")
    count: int = Field(default=1, ge=1, le=1000)
    expires_at: dt.datetime | None = None


class CodesOut(BaseModel):
    amount: MoneyOut
    expires_at: dt.datetime | None
    codes: list[str] = Field(description="Shown only now; stored hashed.")


class NoteIn(Body):
    target: str = Field(max_length=200, pattern=r"^(user|org):[A-Za-z0-9_\-]+$",
                        description="user:ID or org:ID.")
    body: str = Field(min_length=1, max_length=MAX_NOTE_CHARS)
