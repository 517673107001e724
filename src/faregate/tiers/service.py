"""Usage tiers: what each tier allows, which tier an organization has earned, and changing them.

An organization earns a tier by what it has paid (successful payments less refunds and
disputes; redeemed codes and grants are not payments) and by its age, like OpenAI's tiers. The
earned tier (`organizations.tier`) only ever rises: after a payment is credited
(billing/settle.py) and, for the age thresholds, by an hourly job. An operator's override
(`tier_override`) wins over it; organizations made by the operator CLI get Unlimited."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from faregate.db.schema import (
    accounts,
    api_keys,
    billing_states,
    organizations,
    transfers,
    usage_tiers,
)
from faregate.errors import InvalidRequest, NotFound

# Transfers out of an organization's balance that give a payment back.
_PAID_BACK = ("refund", "dispute", "owed_settled")
_LIMIT_FIELDS = ("rpm", "tpm", "key_rpm", "key_tpm")
MAX_RATE = 10**12


@dataclass(frozen=True, slots=True)
class Tier:
    tier: int
    name: str
    min_paid_nano: int | None  # None: set by an operator only
    min_age_days: int
    rpm: int | None  # None: unlimited
    tpm: int | None
    key_rpm: int | None  # None: a key may use all of the organization's
    key_tpm: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tier(row: Any) -> Tier:
    return Tier(int(row.tier), str(row.name),
                None if row.min_paid_nano is None else int(row.min_paid_nano),
                int(row.min_age_days), _opt(row.rpm), _opt(row.tpm), _opt(row.key_rpm),
                _opt(row.key_tpm))


def _opt(value: Any) -> int | None:
    return None if value is None else int(value)


def list_tiers(conn: sa.Connection) -> list[Tier]:
    return [_tier(r) for r in conn.execute(sa.select(usage_tiers)
                                           .order_by(usage_tiers.c.tier)).all()]


def tiers_version(conn: sa.Connection) -> tuple[object, ...]:
    """Changes whenever a tier is edited: what the gateway's cache polls."""
    row = conn.execute(sa.select(sa.func.count(), sa.func.max(usage_tiers.c.updated_at))).one()
    return tuple(row)


def get_tier(conn: sa.Connection, tier: int) -> Tier:
    row = conn.execute(sa.select(usage_tiers).where(usage_tiers.c.tier == tier)).first()
    if row is None:
        raise NotFound(f"No usage tier {tier}.", param="tier")
    return _tier(row)


def amount_paid(conn: sa.Connection, organization_id: str) -> int:
    """What the organization has paid, net of refunds and disputes (nano-USD)."""
    return _paid(conn, organization_id).get(organization_id, 0)


def _paid(conn: sa.Connection, organization_id: str | None = None) -> dict[str, int]:
    acct = accounts.c
    topup = sa.case((transfers.c.kind == "topup", transfers.c.amount_nano), else_=0)
    back = sa.case((transfers.c.kind.in_(_PAID_BACK), transfers.c.amount_nano), else_=0)
    paid_in = (sa.select(acct.organization_id, sa.func.sum(topup).label("paid_in"))
               .select_from(accounts.join(transfers, transfers.c.credit_account_id == acct.id))
               .where(acct.kind == "org_credit", transfers.c.kind == "topup")
               .group_by(acct.organization_id))
    paid_out = (sa.select(acct.organization_id, sa.func.sum(back).label("paid_out"))
                .select_from(accounts.join(transfers, transfers.c.debit_account_id == acct.id))
                .where(acct.kind == "org_credit", transfers.c.kind.in_(_PAID_BACK))
                .group_by(acct.organization_id))
    if organization_id is not None:
        paid_in = paid_in.where(acct.organization_id == organization_id)
        paid_out = paid_out.where(acct.organization_id == organization_id)
    totals = {str(o): int(v) for o, v in conn.execute(paid_in).all()}
    if not totals:
        return {}
    for o, v in conn.execute(paid_out).all():
        totals[str(o)] = totals.get(str(o), 0) - int(v)
    # A refund of credit already spent is owed until a later payment settles it (and the
    # settlement is counted above, as paid back): what is owed now was paid back too.
    owed = sa.select(billing_states.c.organization_id, billing_states.c.owed_nano).where(
        billing_states.c.owed_nano > 0)
    if organization_id is not None:
        owed = owed.where(billing_states.c.organization_id == organization_id)
    for o, v in conn.execute(owed).all():
        if str(o) in totals:
            totals[str(o)] -= int(v)
    return totals


def earned_tier(tiers: list[Tier], paid_nano: int, age_days: float) -> int:
    """The highest automatic tier whose thresholds are met."""
    best = 0
    for t in tiers:
        if t.min_paid_nano is not None and paid_nano >= t.min_paid_nano \
                and age_days >= t.min_age_days:
            best = max(best, t.tier)
    return best


def _age_days(created_at: dt.datetime, now: dt.datetime) -> float:
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=dt.UTC)
    return (now - created_at).total_seconds() / 86400


def compute_tier(conn: sa.Connection, organization_id: str) -> int:
    """The tier the organization has earned now (by amount paid and age)."""
    created = conn.execute(sa.select(organizations.c.created_at).where(
        organizations.c.id == organization_id)).scalar()
    if created is None:
        raise NotFound(f"No organization {organization_id!r}.")
    return earned_tier(list_tiers(conn), amount_paid(conn, organization_id),
                       _age_days(created, dt.datetime.now(dt.UTC)))


def raise_tier(conn: sa.Connection, organization_id: str) -> int | None:
    """Raise the organization's automatic tier to what it has earned; never lowers it. Returns
    the new tier when it rose."""
    earned = compute_tier(conn, organization_id)
    done = conn.execute(organizations.update().where(
        organizations.c.id == organization_id, organizations.c.tier < earned)
        .values(tier=earned))
    return earned if done.rowcount else None


def raise_earned_tiers(conn: sa.Connection) -> int:
    """Raise every organization that has earned a higher tier (the hourly job, for the age
    thresholds). Returns how many rose."""
    tiers = list_tiers(conn)
    paid = _paid(conn)
    now = dt.datetime.now(dt.UTC)
    rows = conn.execute(sa.select(organizations.c.id, organizations.c.created_at,
                                  organizations.c.tier)).all()
    raised = 0
    for org_id, created, current in rows:
        earned = earned_tier(tiers, paid.get(str(org_id), 0), _age_days(created, now))
        if earned > int(current):
            raised += conn.execute(organizations.update().where(
                organizations.c.id == org_id, organizations.c.tier < earned)
                .values(tier=earned)).rowcount
    return raised


# --- Operator changes (the caller audits them) ------------------------------------------------

def update_tier(conn: sa.Connection, tier: int, changes: dict[str, Any]) -> tuple[Tier, Tier]:
    """Change a tier's name, thresholds or limits; returns (before, after)."""
    before = get_tier(conn, tier)
    values: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "name":
            if not isinstance(value, str) or not value.strip() or len(value) > 40:
                raise InvalidRequest("A tier needs a name of 1 to 40 characters.", param="name")
            values["name"] = value.strip()
        elif name == "min_paid_nano":
            if value is not None and (not isinstance(value, int) or value < 0):
                raise InvalidRequest("min_paid must be zero or more, or null (operator-set "
                                     "only).", param=name)
            values[name] = value
        elif name == "min_age_days":
            if not isinstance(value, int) or value < 0:
                raise InvalidRequest("min_age_days must be zero or more.", param=name)
            values[name] = value
        elif name in _LIMIT_FIELDS:
            values[name] = check_rate(value, name)
        else:
            raise InvalidRequest(f"Unknown tier field {name!r}.", param=name)
    if values:
        values["updated_at"] = dt.datetime.now(dt.UTC)
        conn.execute(usage_tiers.update().where(usage_tiers.c.tier == tier).values(**values))
    return before, get_tier(conn, tier)


def check_rate(value: Any, param: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RATE:
        raise InvalidRequest(f"{param} must be a whole number of at least 1, or null for no "
                             "limit.", param=param)
    return value


def organization_tier(conn: sa.Connection, organization_id: str) -> dict[str, Any]:
    """The organization's tiers: earned, override and in force, with the limits in force."""
    row = conn.execute(sa.select(organizations.c.tier, organizations.c.tier_override).where(
        organizations.c.id == organization_id)).first()
    if row is None:
        raise NotFound(f"No organization {organization_id!r}.")
    in_force = int(row.tier_override if row.tier_override is not None else row.tier)
    found = conn.execute(sa.select(usage_tiers).where(usage_tiers.c.tier == in_force)).first()
    limits = _tier(found) if found is not None else None
    return {"tier": in_force, "earned_tier": int(row.tier),
            "tier_override": _opt(row.tier_override),
            "name": limits.name if limits else None,
            "rpm": limits.rpm if limits else None, "tpm": limits.tpm if limits else None,
            "key_rpm": limits.key_rpm if limits else None,
            "key_tpm": limits.key_tpm if limits else None}


def set_override(conn: sa.Connection, organization_id: str, tier: int | None
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Set (or, with None, clear) the operator's tier for an organization."""
    before = organization_tier(conn, organization_id)
    if tier is not None:
        get_tier(conn, tier)
    conn.execute(organizations.update().where(organizations.c.id == organization_id)
                 .values(tier_override=tier))
    return before, organization_tier(conn, organization_id)


def key_rate_limits(conn: sa.Connection, key_id: str) -> tuple[str, dict[str, int | None]]:
    row = conn.execute(sa.select(api_keys.c.organization_id, api_keys.c.rpm_limit,
                                 api_keys.c.tpm_limit).where(api_keys.c.id == key_id)).first()
    if row is None:
        raise NotFound(f"No API key {key_id!r}.")
    return str(row.organization_id), {"rpm_limit": _opt(row.rpm_limit),
                                      "tpm_limit": _opt(row.tpm_limit)}


def set_key_rate_limits(conn: sa.Connection, key_id: str, rpm: int | None, tpm: int | None
                        ) -> tuple[str, dict[str, int | None], dict[str, int | None]]:
    """Set a key's own RPM and TPM (None: only the tier's); returns (org, before, after)."""
    org, before = key_rate_limits(conn, key_id)
    conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(
        rpm_limit=check_rate(rpm, "rpm"), tpm_limit=check_rate(tpm, "tpm")))
    return org, before, key_rate_limits(conn, key_id)[1]
