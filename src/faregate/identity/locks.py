"""Serialize work on one subject (an account being signed in to) across processes.

SQLite needs nothing: its write transactions (BEGIN IMMEDIATE) already run one at a time. On
PostgreSQL a transaction-scoped advisory lock on a hash of the subject does it."""

from __future__ import annotations

import sqlalchemy as sa

from faregate.kit.crypto import keyed_hash


def lock_subject(conn: sa.Connection, space: int, subject: str) -> None:
    """Hold a lock on (space, subject) until the transaction ends (PostgreSQL only)."""
    if conn.dialect.name != "postgresql":
        return
    key = int(keyed_hash(b"faregate-locks", subject, purpose=str(space))[:7], 16)
    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(space, key)))
