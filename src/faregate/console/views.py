"""What the operator console shows of an organization or a user, read in one transaction.

Operators see no secret: payment methods by brand and last 4, keys by their redacted form,
phone numbers masked. Reads here never write (the billing state is read as it is, not created
as billing/state.py's `get_state` would)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from faregate.api_keys.service import KeyInfo, list_keys
from faregate.audit.trail import AuditEvent
from faregate.billing import risk
from faregate.console.audit_search import events_about
from faregate.console.notes import Note, list_notes, org_target, user_target
from faregate.db.schema import (
    billing_states,
    memberships,
    organizations,
    payment_methods,
    sessions,
    users,
)
from faregate.errors import NotFound
from faregate.identity.orgs import OrgSummary, list_orgs
from faregate.ledger.accounts import Balance, balance, org_account_id
from faregate.ledger.history import Entry, history
from faregate.usage.report import Sums, totals

USAGE_DAYS = 30
RECENT = 20


@dataclass(frozen=True, slots=True)
class PaymentMethod:
    id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    is_default: bool
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class RiskDecision:
    created_at: dt.datetime
    action: str
    decision: str
    reason: str


@dataclass(frozen=True, slots=True)
class MemberView:
    user_id: str
    email: str
    role: str
    joined_at: dt.datetime
    deactivated: bool


@dataclass(frozen=True, slots=True)
class Deactivation:
    at: dt.datetime
    reason: str | None


@dataclass(frozen=True, slots=True)
class OrgOverview:
    id: str
    name: str
    created_at: dt.datetime
    deactivation: Deactivation | None
    tier: int
    tier_override: int | None
    price_group: str | None
    balance: Balance
    owed_nano: int
    suspended_reason: str | None  # billing suspended (failed charges, refunds), not deactivated
    ledger: list[Entry]
    usage_30d: Sums | None  # None: no usage in the last 30 days
    payment_methods: list[PaymentMethod]
    keys: list[KeyInfo]
    risk_decisions: list[RiskDecision]
    members: list[MemberView]
    notes: list[Note]
    audit: list[AuditEvent]


@dataclass(frozen=True, slots=True)
class UserOverview:
    id: str
    email: str
    created_at: dt.datetime
    email_verified: bool
    phone_masked: str | None
    phone_verified_at: dt.datetime | None
    personal_organization_id: str
    organizations: list[OrgSummary]
    deactivation: Deactivation | None
    active_sessions: int
    notes: list[Note]
    audit: list[AuditEvent]


def _deactivation(at: dt.datetime | None, reason: str | None) -> Deactivation | None:
    return Deactivation(at, reason) if at is not None else None


def org_balance(conn: sa.Connection, organization_id: str) -> Balance:
    return balance(conn, org_account_id(conn, organization_id))


def require_org(conn: sa.Connection, organization_id: str) -> sa.Row[tuple[object, ...]]:
    row = conn.execute(sa.select(organizations)
                       .where(organizations.c.id == organization_id)).first()
    if row is None:
        raise NotFound(f"No organization {organization_id!r}.", param="org_id",
                       code="organization_not_found")
    return row


def require_user(conn: sa.Connection, user_id: str) -> sa.Row[tuple[object, ...]]:
    row = conn.execute(sa.select(users).where(users.c.id == user_id)).first()
    if row is None:
        raise NotFound(f"No user {user_id!r}.", param="user_id", code="user_not_found")
    return row


def _methods(conn: sa.Connection, organization_id: str) -> list[PaymentMethod]:
    p = payment_methods.c
    rows = conn.execute(sa.select(p.id, p.brand, p.last4, p.exp_month, p.exp_year,
                                  p.is_default, p.created_at)
                        .where(p.organization_id == organization_id, p.removed_at.is_(None))
                        .order_by(p.created_at)).all()
    return [PaymentMethod(r.id, r.brand, r.last4, int(r.exp_month), int(r.exp_year),
                          bool(r.is_default), r.created_at) for r in rows]


def _members(conn: sa.Connection, organization_id: str) -> list[MemberView]:
    rows = conn.execute(
        sa.select(memberships.c.user_id, users.c.email, memberships.c.role,
                  memberships.c.created_at, users.c.deactivated_at)
        .join(users, users.c.id == memberships.c.user_id)
        .where(memberships.c.organization_id == organization_id)
        .order_by(memberships.c.created_at, memberships.c.user_id)).all()
    return [MemberView(r.user_id, r.email, r.role, r.created_at, r.deactivated_at is not None)
            for r in rows]


def usage_totals(conn: sa.Connection, organization_id: str, *, days: int = USAGE_DAYS,
                 now: dt.datetime | None = None) -> Sums | None:
    end = int((now or dt.datetime.now(dt.UTC)).timestamp())
    rows = totals(conn, organization_id, start=end - days * 86_400, end=end)
    return rows[0].sums if rows else None


def org_overview(conn: sa.Connection, organization_id: str) -> OrgOverview:
    org = require_org(conn, organization_id)
    m = org._mapping
    acct = org_account_id(conn, organization_id)
    billing = conn.execute(sa.select(billing_states.c.suspended_at,
                                     billing_states.c.suspended_reason,
                                     billing_states.c.owed_nano)
                           .where(billing_states.c.organization_id == organization_id)).first()
    suspended = (billing.suspended_reason or "suspended"
                 if billing is not None and billing.suspended_at is not None else None)
    return OrgOverview(
        id=m["id"], name=m["name"], created_at=m["created_at"],
        deactivation=_deactivation(m["deactivated_at"], m["deactivated_reason"]),
        tier=int(m["tier"]), tier_override=m["tier_override"], price_group=m["price_group"],
        balance=balance(conn, acct), owed_nano=int(billing.owed_nano) if billing else 0,
        suspended_reason=suspended, ledger=history(conn, acct, limit=RECENT),
        usage_30d=usage_totals(conn, organization_id),
        payment_methods=_methods(conn, organization_id),
        keys=list_keys(conn, organization_id),
        risk_decisions=[RiskDecision(*d) for d in risk.decisions(conn, organization_id,
                                                                 limit=RECENT)],
        members=_members(conn, organization_id),
        notes=list_notes(conn, [org_target(organization_id)]),
        audit=events_about(conn, [org_target(organization_id), organization_id],
                           organization_id=organization_id))


def ledger_page(conn: sa.Connection, organization_id: str, *, limit: int = 50,
                before_id: int | None = None) -> list[Entry]:
    require_org(conn, organization_id)
    return history(conn, org_account_id(conn, organization_id), limit=limit,
                   before_id=before_id)


def user_overview(conn: sa.Connection, user_id: str) -> UserOverview:
    row = require_user(conn, user_id)
    m = row._mapping
    now = dt.datetime.now(dt.UTC)
    live = conn.execute(sa.select(sa.func.count()).select_from(sessions).where(
        sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None),
        sessions.c.expires_at > now)).scalar_one()
    return UserOverview(
        id=m["id"], email=m["email"], created_at=m["created_at"],
        email_verified=m["email_verified_at"] is not None,
        phone_masked=m["phone_masked"] if m["phone_verified_at"] is not None else None,
        phone_verified_at=m["phone_verified_at"],
        personal_organization_id=m["organization_id"],
        organizations=list_orgs(conn, user_id),
        deactivation=_deactivation(m["deactivated_at"], m["deactivated_reason"]),
        active_sessions=int(live),
        notes=list_notes(conn, [user_target(user_id)]),
        audit=events_about(conn, [user_target(user_id), user_id], actor=f"user:{user_id}"))
