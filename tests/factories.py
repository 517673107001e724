"""Rows that many suites' tests start from, made through the services."""

from __future__ import annotations

import itertools

import sqlalchemy as sa

from faregate.identity.users import User, create_user
from faregate.ledger.transfers import grant

_users = itertools.count()


def funded_user(conn: sa.Connection, funds_nano: int = 0) -> User:
    """A new user (an address no other test uses) with their personal organization, granted
    `funds_nano` of credit when it is not 0."""
    user = create_user(conn, f"funded{next(_users)}@example.com")
    if funds_nano:
        grant(conn, user.organization_id, funds_nano, actor="t", reason="t")
    return user
