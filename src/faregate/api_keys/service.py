"""Issue, list, rename, revoke and look up API keys.

A key is shown once, at creation; only its HMAC (with the server's pepper) and a redacted form
are stored. Keys belong to a project of an organization. Users create their own keys after
verifying a phone number; the operator CLI issues service keys without that step."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from faregate.api_keys.scopes import SCOPES, KeyKind, Permissions, allowed_scopes
from faregate.audit import trail
from faregate.db.schema import (
    accounts,
    api_keys,
    billing_states,
    organizations,
    projects,
    users,
)
from faregate.errors import InvalidRequest, NotFound
from faregate.kit.crypto import ADMIN_KEY_PREFIX, generate_api_key, hash_api_key, redact_api_key
from faregate.kit.ids import new_id
from faregate.ledger.limits import PERIODS, Period

MAX_KEY_NAME = 200


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What a key is asked to be."""

    name: str
    kind: KeyKind = "project"
    project_id: str | None = None
    permissions: Permissions = "all"
    scopes: tuple[str, ...] = ()
    expires_at: dt.datetime | None = None
    spend_limit_nano: int | None = None
    spend_limit_period: Period | None = None


@dataclass(frozen=True, slots=True)
class IssuedKey:
    id: str
    key: str  # shown once, never stored
    redacted: str
    name: str
    organization_id: str


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: str
    name: str
    redacted: str
    organization_id: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    project_id: str | None = None
    kind: str = "project"
    permissions: str = "all"
    scopes: tuple[str, ...] = ()
    expires_at: dt.datetime | None = None
    spend_limit_nano: int | None = None
    spend_limit_period: str | None = None
    last_used_at: dt.datetime | None = None
    created_by: str | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid key acts for: what the hot path needs, nothing more."""

    key_id: str
    organization_id: str
    acct_id: int
    project_id: str | None = None
    kind: str = "project"
    scopes: frozenset[str] | None = None  # None: every scope
    expires_at: float | None = None  # POSIX seconds
    spend_limit_nano: int | None = None
    spend_limit_period: Period | None = None
    billing_suspended: bool = False
    project_budget_nano: int | None = None  # the key's project's monthly budget, if any
    log_requests: bool = False  # an operator turned request logging on for the organization
    tier: int = 0  # the organization's usage tier in force (tiers/)
    price_group: str = "default"
    key_rpm: int | None = None  # the key's own rate limits, if set
    key_tpm: int | None = None
    # Why /v1 refuses this key with 401 account_deactivated: "organization" or "user" (the
    # key's creator), when an operator deactivated them; None otherwise.
    deactivated: str | None = None


def _default_project(conn: sa.Connection, organization_id: str) -> str | None:
    found = conn.execute(sa.select(projects.c.id).where(
        projects.c.organization_id == organization_id, projects.c.is_default)).scalar()
    return str(found) if found is not None else None


def _check_spec(conn: sa.Connection, organization_id: str, spec: KeySpec) -> KeySpec:
    name = spec.name.strip()
    if not name or len(name) > MAX_KEY_NAME:
        raise InvalidRequest(f"A key needs a name of 1 to {MAX_KEY_NAME} characters.",
                             param="name")
    project_id = spec.project_id
    if project_id is None:
        project_id = _default_project(conn, organization_id)
    else:
        row = conn.execute(sa.select(projects.c.archived_at).where(
            projects.c.id == project_id, projects.c.organization_id == organization_id)).first()
        if row is None:
            raise NotFound(f"No project {project_id!r} in this organization.",
                           param="project_id")
        if row.archived_at is not None:
            raise InvalidRequest("That project is archived; keys cannot be added to it.",
                                 param="project_id")
    scopes: tuple[str, ...] = ()
    if spec.permissions == "restricted":
        unknown = sorted(set(spec.scopes) - SCOPES.keys())
        if unknown:
            raise InvalidRequest(f"Unknown scope(s): {', '.join(unknown)}. Known scopes: "
                                 f"{', '.join(SCOPES)}.", param="scopes")
        if not spec.scopes:
            raise InvalidRequest("A restricted key needs at least one scope.", param="scopes")
        scopes = tuple(sorted(set(spec.scopes)))
    if spec.expires_at is not None and spec.expires_at <= dt.datetime.now(dt.UTC):
        raise InvalidRequest("The expiry must be in the future.", param="expires_at")
    if (spec.spend_limit_nano is None) != (spec.spend_limit_period is None):
        raise InvalidRequest("A spend limit needs both an amount and a period (day, week or "
                             "month).", param="spend_limit_period")
    if spec.spend_limit_nano is not None and spec.spend_limit_nano <= 0:
        raise InvalidRequest("The spend limit must be more than zero.", param="spend_limit")
    if spec.spend_limit_period is not None and spec.spend_limit_period not in PERIODS:
        raise InvalidRequest("The spend limit period must be day, week or month.",
                             param="spend_limit_period")
    if spec.kind == "admin" and (spec.spend_limit_nano is not None
                                 or spec.permissions != "all"):
        raise InvalidRequest("Admin keys read the organization's usage and costs; they take no "
                             "spend limit or permissions.", param="kind")
    return KeySpec(name, spec.kind, project_id, spec.permissions, scopes, spec.expires_at,
                   spec.spend_limit_nano, spec.spend_limit_period)


def issue_key(conn: sa.Connection, *, organization_id: str, user_id: str | None, name: str,
              pepper: bytes, spec: KeySpec | None = None) -> IssuedKey:
    """Create a key (no permission checks: callers check who may). The full key is returned
    once and never stored."""
    spec = _check_spec(conn, organization_id, spec or KeySpec(name=name, kind="service"))
    key = generate_api_key(ADMIN_KEY_PREFIX if spec.kind == "admin" else "sk-fg-")
    key_id = new_id("key")
    redacted = redact_api_key(key)
    conn.execute(api_keys.insert().values(
        id=key_id, organization_id=organization_id, user_id=user_id, name=spec.name,
        key_hash=hash_api_key(key, pepper), redacted=redacted,
        created_at=dt.datetime.now(dt.UTC), project_id=spec.project_id, kind=spec.kind,
        permissions=spec.permissions, scopes=",".join(spec.scopes) or None,
        expires_at=spec.expires_at, spend_limit_nano=spec.spend_limit_nano,
        spend_limit_period=spec.spend_limit_period))
    return IssuedKey(key_id, key, redacted, spec.name, organization_id)


def _info(r: sa.Row[tuple[object, ...]]) -> KeyInfo:
    m = r._mapping
    return KeyInfo(
        id=m["id"], name=m["name"], redacted=m["redacted"],
        organization_id=m["organization_id"], created_at=m["created_at"],
        revoked_at=m["revoked_at"], project_id=m["project_id"], kind=m["kind"],
        permissions=m["permissions"],
        scopes=tuple(s for s in (m["scopes"] or "").split(",") if s),
        expires_at=m["expires_at"], spend_limit_nano=m["spend_limit_nano"],
        spend_limit_period=m["spend_limit_period"], last_used_at=m["last_used_at"],
        created_by=m["user_id"])


def list_keys(conn: sa.Connection, organization_id: str, *, include_admin: bool = True,
              include_revoked: bool = True, project_id: str | None = None) -> list[KeyInfo]:
    q = (sa.select(api_keys).where(api_keys.c.organization_id == organization_id)
         .order_by(api_keys.c.created_at))
    if not include_admin:
        q = q.where(api_keys.c.kind != "admin")
    if not include_revoked:
        q = q.where(api_keys.c.revoked_at.is_(None))
    if project_id is not None:
        q = q.where(api_keys.c.project_id == project_id)
    return [_info(r) for r in conn.execute(q)]


def get_key(conn: sa.Connection, key_id: str, *, organization_id: str | None = None) -> KeyInfo:
    q = sa.select(api_keys).where(api_keys.c.id == key_id)
    if organization_id is not None:
        q = q.where(api_keys.c.organization_id == organization_id)
    row = conn.execute(q).first()
    if row is None:
        raise NotFound(f"No API key {key_id!r}.")
    return _info(row)


def rename_key(conn: sa.Connection, key_id: str, name: str, *, organization_id: str) -> KeyInfo:
    name = name.strip()
    if not name or len(name) > MAX_KEY_NAME:
        raise InvalidRequest(f"A key needs a name of 1 to {MAX_KEY_NAME} characters.",
                             param="name")
    get_key(conn, key_id, organization_id=organization_id)
    conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(name=name))
    return get_key(conn, key_id)


def revoke_key(conn: sa.Connection, key_id: str, *, organization_id: str | None = None,
               actor: str | None = None, ip: str | None = None) -> KeyInfo:
    """Revoke a key (idempotent). Every process stops accepting it within the key cache's
    lifetime (2 s)."""
    before = get_key(conn, key_id, organization_id=organization_id)
    conn.execute(api_keys.update().where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                 .values(revoked_at=dt.datetime.now(dt.UTC)))
    if actor is not None and before.revoked_at is None:
        trail.record(conn, action="api_key.revoked", actor=actor, target=key_id,
                     organization_id=before.organization_id, ip=ip,
                     detail={"name": before.name, "redacted": before.redacted})
    return get_key(conn, key_id)


def find_principal(conn: sa.Connection, key_hash: str) -> Principal | None:
    """The active key with this hash and its organization's credit account, if any."""
    row = conn.execute(
        sa.select(api_keys.c.id, api_keys.c.organization_id, accounts.c.id.label("acct_id"),
                  api_keys.c.project_id, api_keys.c.kind, api_keys.c.permissions,
                  api_keys.c.scopes, api_keys.c.expires_at, api_keys.c.spend_limit_nano,
                  api_keys.c.spend_limit_period, billing_states.c.suspended_at,
                  projects.c.monthly_budget_nano, organizations.c.request_logging_until,
                  organizations.c.tier, organizations.c.tier_override,
                  organizations.c.price_group, organizations.c.deactivated_at,
                  api_keys.c.rpm_limit, api_keys.c.tpm_limit,
                  users.c.deactivated_at.label("user_deactivated_at"))
        .join(accounts, sa.and_(accounts.c.organization_id == api_keys.c.organization_id,
                                accounts.c.kind == "org_credit"))
        .outerjoin(billing_states,
                   billing_states.c.organization_id == api_keys.c.organization_id)
        .outerjoin(projects, projects.c.id == api_keys.c.project_id)
        .join(organizations, organizations.c.id == api_keys.c.organization_id)
        .outerjoin(users, users.c.id == api_keys.c.user_id)
        .where(api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None))
    ).first()
    if row is None:
        return None
    return Principal(
        row.id, row.organization_id, int(row.acct_id), project_id=row.project_id,
        kind=row.kind, scopes=allowed_scopes(row.permissions, row.scopes),
        expires_at=row.expires_at.timestamp() if row.expires_at is not None else None,
        spend_limit_nano=row.spend_limit_nano, spend_limit_period=row.spend_limit_period,
        billing_suspended=row.suspended_at is not None,
        project_budget_nano=row.monthly_budget_nano,
        # Decided here, so the gateway checks a boolean; a key is cached for at most 2 s.
        log_requests=(row.request_logging_until is not None
                      and row.request_logging_until > dt.datetime.now(dt.UTC)),
        tier=int(row.tier_override if row.tier_override is not None else row.tier),
        price_group=row.price_group or "default", key_rpm=row.rpm_limit,
        key_tpm=row.tpm_limit,
        deactivated="organization" if row.deactivated_at is not None else
        "user" if row.user_deactivated_at is not None else None)


def mark_used(conn: sa.Connection, last_used: dict[str, dt.datetime]) -> None:
    """Record when keys were last used (batched by the gateway, off the request path)."""
    for key_id, at in sorted(last_used.items()):
        conn.execute(api_keys.update().where(
            api_keys.c.id == key_id,
            sa.or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at < at))
            .values(last_used_at=at))
