"""Operators in end-to-end tests: made with the real `faregate operators create` command (or the
service, against the deployment's database), and a browser-like client of /admin/api that keeps
cookies and echoes the fg_admin_csrf cookie in X-CSRF-Token, as the console's script does."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import httpx2
import pyotp

from faregate.kit.secretfile import load_or_create_secret
from faregate.operators import accounts
from faregate.operators.rules import Role
from tests.e2e.api_client import CsrfClient
from tests.harness import Deployment

OPERATOR_PASSWORD = "operator passphrase 42"


@dataclass
class NewOperator:
    id: str
    email: str
    password: str
    otpauth_uri: str
    recovery_codes: list[str]

    def code(self, steps_ahead: int = 0) -> str:
        """The authenticator's code now (or `steps_ahead` 30-second steps later)."""
        otp = pyotp.parse_uri(self.otpauth_uri)
        assert isinstance(otp, pyotp.TOTP)
        return otp.at(int(time.time()) + 30 * steps_ahead)


def cli_create_operator(dep: Deployment, email: str, role: Role,
                        password: str = OPERATOR_PASSWORD) -> NewOperator:
    """`faregate operators create EMAIL --role ROLE --password-stdin --json`, as a subprocess."""
    done = subprocess.run(
        [sys.executable, "-m", "faregate.cli", "operators", "create", email, "--role", role,
         "--password-stdin", "--json"], input=password + "\n", env=dep.env,
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    return NewOperator(data["id"], data["email"], password, data["otpauth_uri"],
                       data["recovery_codes"])


def create_operator(dep: Deployment, email: str, role: Role,
                    password: str = OPERATOR_PASSWORD) -> NewOperator:
    """The same through the service, on the deployment's database (faster)."""
    secret = load_or_create_secret(dep.data_dir / "secrets" / "session_secret")
    with dep.engine.begin() as conn:
        made = accounts.create_operator(
            conn, email=email, role=role, password_hash=accounts.hash_new_password(
                password, email=email, min_length=10), name=None, cipher=dep.cipher,
            secret=secret, actor="test")
    e = made.enrolment
    return NewOperator(made.operator.id, made.operator.email, password, e.otpauth_uri,
                       list(e.recovery_codes))


class OperatorClient(CsrfClient):
    """The console's client of /admin/api (its own session and CSRF cookies)."""

    csrf_cookie = "fg_admin_csrf"
    csrf_path = "/admin/api/auth/csrf"

    def sign_in(self, op: NewOperator, *, totp_code: str | None = None,
                recovery_code: str | None = None, password: str | None = None,
                **kw: Any) -> httpx2.Response:
        body: dict[str, Any] = {"email": op.email, "password": password or op.password}
        if totp_code is not None:
            body["totp_code"] = totp_code
        if recovery_code is not None:
            body["recovery_code"] = recovery_code
        return self.post("/admin/api/auth/signin", body, **kw)

    def signed_in(self, op: NewOperator, steps_ahead: int = 0) -> OperatorClient:
        r = self.sign_in(op, totp_code=op.code(steps_ahead))
        assert r.status_code == 200, r.text
        return self

