"""TOTP (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits) with pyotp, and its replay rule.

A code is accepted for the current step or one step either side (clock drift), and only for a
step later than the last one accepted for that operator: a code, once used, is dead, and so
is every older one. The step is claimed with a conditional update, so two concurrent sign-ins
with the same code cannot both succeed."""

from __future__ import annotations

import hmac
import time

import pyotp
import sqlalchemy as sa

from faregate.db.schema import operators
from faregate.operators.rules import TOTP_ISSUER

STEP_S = 30
DIGITS = 6
WINDOW_STEPS = 1


def new_secret() -> str:
    """A random base32 secret of 160 bits (RFC 4226's recommended length)."""
    return pyotp.random_base32()


def otpauth_uri(secret: str, email: str, *, issuer: str = TOTP_ISSUER) -> str:
    """The otpauth:// URI an authenticator app enrols from (shown as a QR code by a page)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S).provisioning_uri(
        name=email, issuer_name=issuer)


def current_step(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // STEP_S)


def matching_step(secret: str, code: str, *, after_step: int | None,
                  now: float | None = None) -> int | None:
    """The step within the window that `code` is valid for and that is later than
    `after_step`, or None."""
    code = code.replace(" ", "").strip()
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    otp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S)
    current = current_step(now)
    for step in range(current - WINDOW_STEPS, current + WINDOW_STEPS + 1):
        if after_step is not None and step <= after_step:
            continue
        if hmac.compare_digest(otp.generate_otp(step), code):
            return step
    return None


def claim_step(conn: sa.Connection, operator_id: str, step: int) -> bool:
    """Record `step` as the operator's last used one unless it (or a later one) already is."""
    done = conn.execute(operators.update().where(
        operators.c.id == operator_id,
        sa.or_(operators.c.totp_last_step.is_(None), operators.c.totp_last_step < step))
        .values(totp_last_step=step))
    return done.rowcount == 1
