"""`faregate operators ...` run as the real command against a throwaway SQLite database."""

from __future__ import annotations

from pathlib import Path

import pyotp
import sqlalchemy as sa

from faregate.db.engine import create_engine
from faregate.identity.passwords import verify_password
from tests.cli._support import Cli, make_cli

PASSWORD = "operator passphrase 42"


def _hash(cli: Cli, email: str) -> str:
    engine = create_engine(cli.database_url, pool_size=1)
    try:
        with engine.begin() as conn:
            return str(conn.execute(sa.text("SELECT password_hash FROM operators WHERE email = "
                                            ":e"), {"e": email}).scalar_one())
    finally:
        engine.dispose()


def test_operators_commands(tmp_path: Path) -> None:
    cli = make_cli(tmp_path, f"sqlite:///{tmp_path / 'fg.db'}")
    done = cli("operators", "create", "Root@Example.com", "--role", "admin", "--name", "Root",
               "--password-stdin", stdin=PASSWORD + "\n")
    lines = dict(line.split(":", 1) for line in done.stdout.splitlines())
    uri, secret = lines["otpauth URI"].strip(), lines["TOTP secret"].strip()
    codes = lines["recovery codes"].split()
    otp = pyotp.parse_uri(uri)
    assert isinstance(otp, pyotp.TOTP) and otp.secret == secret
    assert otp.name == "root@example.com" and otp.issuer == "Faregate"
    assert len(set(codes)) == 10
    assert "cannot be shown again" in done.stderr
    assert verify_password(_hash(cli, "root@example.com"), PASSWORD)

    support = cli.json("operators", "create", "help@example.com", "--role", "support",
                       "--password-stdin", stdin=PASSWORD + "\n")
    assert support["role"] == "support" and support["status"] == "active"
    assert support["totp_secret"] in support["otpauth_uri"]
    assert len(support["recovery_codes"]) == 10
    listed = cli.json("operators", "list")
    assert [(o["email"], o["role"], o["totp_confirmed"]) for o in listed] == [
        ("root@example.com", "admin", False), ("help@example.com", "support", False)]
    assert support["totp_secret"] not in str(listed)
    assert not {"totp_secret", "recovery_codes", "otpauth_uri"} & set(listed[1])

    assert cli.json("operators", "disable", "help@example.com")["status"] == "disabled"
    assert cli.json("operators", "enable", "help@example.com")["status"] == "active"
    # The last enabled admin stays; unknown operators and duplicates are refused (exit 1).
    refused = cli("operators", "disable", "root@example.com", expect=1)
    assert "last enabled admin" in refused.stderr
    assert "no operator" in cli("operators", "enable", "nobody@example.com", expect=1).stderr
    assert "already exists" in cli("operators", "create", "help@example.com", "--role",
                                   "admin", "--password-stdin", stdin=PASSWORD + "\n",
                                   expect=1).stderr
    # A weak password is a usage error (exit 2) and changes nothing.
    assert "at least" in cli("operators", "set-password", "root@example.com",
                             "--password-stdin", stdin="short\n", expect=2).stderr
    cli("operators", "create", "x@example.com", "--role", "boss", "--password-stdin",
        stdin=PASSWORD + "\n", expect=2)

    reset = cli.json("operators", "reset-totp", "help@example.com")
    assert reset["totp_secret"] != support["totp_secret"]
    assert set(reset["recovery_codes"]).isdisjoint(support["recovery_codes"])

    cli("operators", "set-password", "root@example.com", "--password-stdin",
        stdin="another passphrase 43\n")
    assert verify_password(_hash(cli, "root@example.com"), "another passphrase 43")
