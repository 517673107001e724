"""Helpers for the operator services' tests (the `engine` and `db` fixtures are in
tests/conftest.py)."""

from __future__ import annotations

import functools
import time

import pyotp
from sqlalchemy.engine import Engine

from faregate.audit.trail import AuditEvent, list_events
from faregate.identity.passwords import hash_password
from faregate.kit.crypto import Cipher
from faregate.operators import accounts
from faregate.operators.accounts import Enrolled
from faregate.operators.rules import OperatorRules, Role

SECRET = b"test-session-secret"
CIPHER = Cipher(b"test-encryption-key")
PASSWORD = "operator passphrase 42"
# Small limits, so that tests reach them quickly.
RULES = OperatorRules(session_ttl_s=3600, session_idle_s=600, sign_in_attempts_per_account=4,
                      sign_in_attempts_per_ip=8)


@functools.cache
def password_hash() -> str:
    return hash_password(PASSWORD)


def make_operator(engine: Engine, email: str, role: Role = "admin", *,
                  name: str | None = None) -> Enrolled:
    with engine.begin() as conn:
        return accounts.create_operator(conn, email=email, role=role,
                                        password_hash=password_hash(), name=name,
                                        cipher=CIPHER, secret=SECRET, actor="test")


def code(enrolled: Enrolled, steps_ahead: int = 0) -> str:
    """The authenticator's code now (or `steps_ahead` 30-second steps later)."""
    otp = pyotp.parse_uri(enrolled.enrolment.otpauth_uri)
    assert isinstance(otp, pyotp.TOTP)
    return otp.at(int(time.time()) + 30 * steps_ahead)


def audit(engine: Engine, action: str) -> list[AuditEvent]:
    with engine.begin() as conn:
        return list_events(conn, action=action)
