"""Issue, list, revoke and look up API keys."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from faregate.db.schema import accounts, api_keys
from faregate.errors import NotFound
from faregate.kit.crypto import generate_api_key, hash_api_key, redact_api_key
from faregate.kit.ids import new_id


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


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid key acts for: what the hot path needs, nothing more."""

    key_id: str
    organization_id: str
    acct_id: int


def issue_key(conn: sa.Connection, *, organization_id: str, user_id: str | None, name: str,
              pepper: bytes) -> IssuedKey:
    key = generate_api_key()
    key_id = new_id("key")
    redacted = redact_api_key(key)
    conn.execute(api_keys.insert().values(
        id=key_id, organization_id=organization_id, user_id=user_id, name=name,
        key_hash=hash_api_key(key, pepper), redacted=redacted,
        created_at=dt.datetime.now(dt.UTC)))
    return IssuedKey(key_id, key, redacted, name, organization_id)


def list_keys(conn: sa.Connection, organization_id: str) -> list[KeyInfo]:
    rows = conn.execute(sa.select(api_keys).where(api_keys.c.organization_id == organization_id)
                        .order_by(api_keys.c.created_at)).all()
    return [KeyInfo(r.id, r.name, r.redacted, r.organization_id, r.created_at, r.revoked_at)
            for r in rows]


def revoke_key(conn: sa.Connection, key_id: str) -> KeyInfo:
    conn.execute(api_keys.update().where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                 .values(revoked_at=dt.datetime.now(dt.UTC)))
    row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).first()
    if row is None:
        raise NotFound(f"no API key {key_id!r}")
    return KeyInfo(row.id, row.name, row.redacted, row.organization_id, row.created_at,
                   row.revoked_at)


def find_principal(conn: sa.Connection, key_hash: str) -> Principal | None:
    """The active key with this hash and its organization's credit account, if any."""
    row = conn.execute(
        sa.select(api_keys.c.id, api_keys.c.organization_id, accounts.c.id.label("acct_id"))
        .join(accounts, sa.and_(accounts.c.organization_id == api_keys.c.organization_id,
                                accounts.c.kind == "org_credit"))
        .where(api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None))
    ).first()
    if row is None:
        return None
    return Principal(row.id, row.organization_id, int(row.acct_id))

