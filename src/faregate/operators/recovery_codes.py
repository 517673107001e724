"""Recovery codes: ten single-use codes made with the TOTP secret, for an operator who lost
their authenticator. Shown once; stored as keyed hashes (each has ~50 random bits, and
sign-in attempts are throttled, so a keyed hash is as good as a slow one here)."""

from __future__ import annotations

import datetime as dt
import secrets

import sqlalchemy as sa

from faregate.db.schema import operator_recovery_codes
from faregate.kit.crypto import keyed_hash

COUNT = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/i/l
_HALF = 5


def _new_code() -> str:
    chars = "".join(secrets.choice(_ALPHABET) for _ in range(2 * _HALF))
    return f"{chars[:_HALF]}-{chars[_HALF:]}"


def _normalize(code: str) -> str:
    return "".join(c for c in code.lower() if c.isalnum())


def _hash(secret: bytes, operator_id: str, code: str) -> str:
    return keyed_hash(secret, f"{operator_id}:{_normalize(code)}", purpose="operator_recovery")


def replace_codes(conn: sa.Connection, operator_id: str, *, secret: bytes) -> tuple[str, ...]:
    """Make a new set of codes (the old ones stop working); returns them, to show once."""
    codes = tuple(_new_code() for _ in range(COUNT))
    now = dt.datetime.now(dt.UTC)
    conn.execute(operator_recovery_codes.delete().where(
        operator_recovery_codes.c.operator_id == operator_id))
    conn.execute(operator_recovery_codes.insert(), [
        {"operator_id": operator_id, "code_hash": _hash(secret, operator_id, c),
         "created_at": now} for c in codes])
    return codes


def consume(conn: sa.Connection, operator_id: str, code: str, *, secret: bytes) -> bool:
    """Use up one code; False when it is not one of the operator's unused codes."""
    if not 0 < len(code) <= 40:
        return False
    done = conn.execute(operator_recovery_codes.update().where(
        operator_recovery_codes.c.operator_id == operator_id,
        operator_recovery_codes.c.code_hash == _hash(secret, operator_id, code),
        operator_recovery_codes.c.used_at.is_(None)).values(used_at=dt.datetime.now(dt.UTC)))
    return done.rowcount == 1


def remaining(conn: sa.Connection, operator_id: str) -> int:
    return int(conn.execute(sa.select(sa.func.count()).where(
        operator_recovery_codes.c.operator_id == operator_id,
        operator_recovery_codes.c.used_at.is_(None))).scalar_one())
