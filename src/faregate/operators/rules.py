"""The limits of operator sign-in and sessions, built from Settings (defaults for tests)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from faregate.config import Settings

Role = Literal["admin", "support"]
ROLES: tuple[Role, ...] = ("admin", "support")
SIGN_IN_WINDOW_S = 15 * 60
TOTP_ISSUER = "Faregate"


@dataclass(frozen=True, slots=True)
class OperatorRules:
    session_ttl_s: int = 12 * 3600
    session_idle_s: int = 30 * 60
    sign_in_attempts_per_account: int = 10  # per SIGN_IN_WINDOW_S, successes included
    sign_in_attempts_per_ip: int = 30  # per SIGN_IN_WINDOW_S
    password_min_length: int = 10

    @classmethod
    def from_settings(cls, s: Settings) -> OperatorRules:
        return cls(session_ttl_s=s.operator_session_ttl_s,
                   session_idle_s=s.operator_session_idle_s,
                   sign_in_attempts_per_account=s.operator_sign_in_attempts_per_account,
                   sign_in_attempts_per_ip=s.operator_sign_in_attempts_per_ip,
                   password_min_length=s.password_min_length)


def as_role(value: str) -> Role:
    if value == "admin":
        return "admin"
    if value == "support":
        return "support"
    raise ValueError(f"not an operator role: {value!r}")
