"""The limits of accounts and sign-in, built from Settings by the API (defaults for tests)."""

from __future__ import annotations

from dataclasses import dataclass

from faregate.config import Settings

SIGN_IN_WINDOW_S = 15 * 60
HOUR_S = 3600


@dataclass(frozen=True, slots=True)
class AuthRules:
    public_url: str = "http://127.0.0.1:8000"
    session_ttl_s: int = 14 * 86400
    password_min_length: int = 10
    email_verify_ttl_s: int = 48 * 3600
    password_reset_ttl_s: int = 3600
    invitation_ttl_s: int = 7 * 86400
    sign_in_attempts_per_account: int = 10  # per SIGN_IN_WINDOW_S
    sign_in_attempts_per_ip: int = 50  # per SIGN_IN_WINDOW_S
    sign_ups_per_ip_per_hour: int = 20
    password_resets_per_account_per_hour: int = 5  # also caps verification emails
    password_resets_per_ip_per_hour: int = 20

    @classmethod
    def from_settings(cls, s: Settings) -> AuthRules:
        return cls(
            public_url=s.resolved_public_url, session_ttl_s=s.session_ttl_s,
            password_min_length=s.password_min_length, email_verify_ttl_s=s.email_verify_ttl_s,
            password_reset_ttl_s=s.password_reset_ttl_s, invitation_ttl_s=s.invitation_ttl_s,
            sign_in_attempts_per_account=s.sign_in_attempts_per_account,
            sign_in_attempts_per_ip=s.sign_in_attempts_per_ip,
            sign_ups_per_ip_per_hour=s.sign_ups_per_ip_per_hour,
            password_resets_per_account_per_hour=s.password_resets_per_account_per_hour,
            password_resets_per_ip_per_hour=s.password_resets_per_ip_per_hour)

    def link(self, path: str, token: str) -> str:
        """An absolute link for an email; the token is URL-safe base64."""
        return f"{self.public_url.rstrip('/')}{path}?token={token}"
