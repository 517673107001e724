"""Creating users, each with a personal organization that owns the balance: the user is its
owner, and it starts with a default project."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.exc import IntegrityError

from faregate.db.schema import memberships, organizations, users
from faregate.errors import InvalidRequest, NotFound, Refused
from faregate.identity.names import MAX_NAME_CHARS
from faregate.identity.projects import DEFAULT_PROJECT_NAME, add_project
from faregate.kit.ids import new_id
from faregate.ledger.accounts import open_org_account
from faregate.tiers import UNLIMITED_TIER

MAX_EMAIL_CHARS = 320


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    organization_id: str


def normalize_email(email: str) -> str:
    """The canonical form of an address (trimmed, lower case, IDN domains in ASCII); refuses
    what is not a syntactically valid, deliverable-looking address. No DNS look-up."""
    email = email.strip()
    if len(email) > MAX_EMAIL_CHARS:
        raise InvalidRequest("This is not a valid email address: it is too long.",
                             param="email", code="invalid_email")
    try:
        valid = validate_email(email, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InvalidRequest(f"{email!r} is not a valid email address: {exc}", param="email",
                             code="invalid_email") from None
    return (valid.ascii_email or valid.normalized).lower()


def lookup_email(email: str) -> str:
    """The form to look an address up by: normalized when valid, else just trimmed and lower
    case (an address that is not valid today may still be stored)."""
    try:
        return normalize_email(email)
    except InvalidRequest:
        return email.strip().lower()[:MAX_EMAIL_CHARS]


def create_user(conn: sa.Connection, email: str, *, password_hash: str | None = None,
                organization_name: str | None = None, email_verified: bool = False,
                tier_override: int | None = UNLIMITED_TIER) -> User:
    """A user, their personal organization (with its credit account and default project) and
    their owner membership of it. Without a password hash the user signs in after a reset."""
    email = normalize_email(email)
    if conn.execute(sa.select(users.c.id).where(users.c.email == email)).first() is not None:
        raise Refused(f"a user with email {email} already exists", code="email_taken")
    now = dt.datetime.now(dt.UTC)
    org_id = new_id("org")
    org_name = (organization_name or f"Personal ({email})")[:MAX_NAME_CHARS]
    conn.execute(organizations.insert().values(id=org_id, name=org_name, created_at=now,
                                               tier_override=tier_override))
    open_org_account(conn, org_id)
    add_project(conn, org_id, DEFAULT_PROJECT_NAME, is_default=True)
    user_id = new_id("user")
    try:
        with conn.begin_nested():
            conn.execute(users.insert().values(
                id=user_id, email=email, organization_id=org_id, created_at=now,
                password_hash=password_hash,
                password_changed_at=now if password_hash is not None else None,
                email_verified_at=now if email_verified else None))
    except IntegrityError:
        raise Refused(f"a user with email {email} already exists", code="email_taken") from None
    conn.execute(memberships.insert().values(organization_id=org_id, user_id=user_id,
                                             role="owner", created_at=now))
    return User(user_id, email, org_id)


def get_user_by_email(conn: sa.Connection, email: str) -> User:
    row = conn.execute(sa.select(users).where(users.c.email == lookup_email(email))).first()
    if row is None:
        raise NotFound(f"no user with email {email!r}")
    return User(row.id, row.email, row.organization_id)


def get_user(conn: sa.Connection, user_id: str) -> User:
    row = conn.execute(sa.select(users).where(users.c.id == user_id)).first()
    if row is None:
        raise NotFound(f"no user with id {user_id!r}")
    return User(row.id, row.email, row.organization_id)
