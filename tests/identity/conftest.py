"""Helpers for the identity services' tests (the `engine` and `db` fixtures are in
tests/conftest.py)."""

from __future__ import annotations

import datetime as dt
import functools

from sqlalchemy.engine import Engine

from faregate.audit.trail import AuditEvent, list_events
from faregate.db.schema import memberships
from faregate.identity.passwords import hash_password
from faregate.identity.rules import AuthRules
from faregate.identity.users import User, create_user

SECRET = b"test-session-secret"
PASSWORD = "correct horse battery staple"
# Small limits, so that tests reach them quickly.
RULES = AuthRules(public_url="https://fg.example.com", sign_in_attempts_per_account=3,
                  sign_in_attempts_per_ip=6, sign_ups_per_ip_per_hour=3,
                  password_resets_per_account_per_hour=2, password_resets_per_ip_per_hour=4)


@functools.cache
def password_hash() -> str:
    """PASSWORD's hash, made once (hashing is slow on purpose)."""
    return hash_password(PASSWORD)


def new_user(engine: Engine, email: str, *, verified: bool = False,
             with_password: bool = True) -> User:
    with engine.begin() as conn:
        return create_user(conn, email, email_verified=verified,
                           password_hash=password_hash() if with_password else None)


def audit(engine: Engine, action: str) -> list[AuditEvent]:
    with engine.begin() as conn:
        return list_events(conn, action=action)


def add_member(engine: Engine, organization_id: str, user_id: str, role: str) -> None:
    with engine.begin() as conn:
        conn.execute(memberships.insert().values(
            organization_id=organization_id, user_id=user_id, role=role,
            created_at=dt.datetime.now(dt.UTC)))
