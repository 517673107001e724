"""Creating users, each with a personal organization that owns the balance."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from faregate.db.schema import organizations, users
from faregate.errors import InvalidRequest, NotFound, Refused
from faregate.kit.ids import new_id
from faregate.ledger.accounts import open_org_account


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    organization_id: str


def normalize_email(email: str) -> str:
    email = email.strip()
    local, sep, domain = email.rpartition("@")
    if not sep or not local or "." not in domain or " " in email or len(email) > 320:
        raise InvalidRequest(f"not a valid email address: {email!r}", param="email")
    return f"{local}@{domain}".lower()


def create_user(conn: sa.Connection, email: str) -> User:
    email = normalize_email(email)
    if conn.execute(sa.select(users.c.id).where(users.c.email == email)).first() is not None:
        raise Refused(f"a user with email {email} already exists")
    now = dt.datetime.now(dt.UTC)
    org_id = new_id("org")
    conn.execute(organizations.insert().values(id=org_id, name=f"Personal ({email})",
                                               created_at=now))
    open_org_account(conn, org_id)
    user_id = new_id("user")
    try:
        with conn.begin_nested():
            conn.execute(users.insert().values(id=user_id, email=email, organization_id=org_id,
                                               created_at=now))
    except IntegrityError:
        raise Refused(f"a user with email {email} already exists") from None
    return User(user_id, email, org_id)


def get_user_by_email(conn: sa.Connection, email: str) -> User:
    row = conn.execute(sa.select(users).where(users.c.email == normalize_email(email))).first()
    if row is None:
        raise NotFound(f"no user with email {email!r}")
    return User(row.id, row.email, row.organization_id)
