"""Operators of the console (/admin): create, list, disable, enable, reset TOTP, set password.

A new operator's TOTP secret (as an otpauth:// URI and in base32) and recovery codes are
printed once; their first sign-in with a code from the authenticator confirms the enrolment."""

from __future__ import annotations

import enum
import sys
from typing import Annotated, Any

import typer

from faregate.cli._edge import (
    JsonFlag,
    actor,
    emit_json,
    emit_table,
    iso,
    settings,
    transaction,
)
from faregate.kit.crypto import Cipher
from faregate.operators import accounts
from faregate.operators.accounts import Enrolled, Operator, OperatorChange

operators_app = typer.Typer(help="Operators of the console (/admin): roles admin and support.",
                            no_args_is_help=True)

OperatorEmail = Annotated[str, typer.Argument(metavar="EMAIL",
                                              help="The operator's email address.")]
PasswordStdin = Annotated[bool, typer.Option(
    "--password-stdin", help="Read the password from standard input instead of prompting.")]
COLUMNS = ["id", "email", "name", "role", "status", "totp_confirmed", "last_sign_in_at"]


class RoleChoice(enum.StrEnum):
    admin = "admin"
    support = "support"


def _data(o: Operator) -> dict[str, Any]:
    return {"id": o.id, "email": o.email, "name": o.name, "role": o.role,
            "status": "active" if o.active else "disabled",
            "totp_confirmed": o.totp_confirmed, "recovery_codes_left": o.recovery_codes_left,
            "created_at": iso(o.created_at), "disabled_at": iso(o.disabled_at),
            "last_sign_in_at": iso(o.last_sign_in_at)}


def _password(email: str, from_stdin: bool) -> str:
    """Read a new password (stdin or prompt), check the policy and hash it."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return accounts.hash_new_password(password, email=email,
                                      min_length=settings().password_min_length)


def _secrets() -> tuple[Cipher, bytes]:
    return Cipher(settings().secret("encryption_key")), settings().secret("session_secret")


def _show_enrolment(done: Enrolled, as_json: bool) -> None:
    e = done.enrolment
    if as_json:
        emit_json({**_data(done.operator), "otpauth_uri": e.otpauth_uri, "totp_secret": e.secret,
                   "recovery_codes": list(e.recovery_codes)})
        return
    typer.echo(f"otpauth URI:     {e.otpauth_uri}")
    typer.echo(f"TOTP secret:     {e.secret}")
    typer.echo("recovery codes:  " + "  ".join(e.recovery_codes))
    sys.stderr.write(f"operator {done.operator.id} <{done.operator.email}> "
                     f"({done.operator.role}): add the URI or secret to an authenticator app "
                     "and keep the recovery codes (each works once); they cannot be shown "
                     "again. The first sign-in with a code confirms the enrolment.\n")


def _show(o: Operator, as_json: bool) -> None:
    if as_json:
        emit_json(_data(o))
    else:
        emit_table([_data(o)], COLUMNS)


@operators_app.command("create")
def operators_create(
    email: OperatorEmail,
    role: Annotated[RoleChoice, typer.Option(help="admin (everything) or support "
                                                  "(read-only).")],
    name: Annotated[str | None, typer.Option(help="A display name.")] = None,
    password_stdin: PasswordStdin = False,
    as_json: JsonFlag = False,
) -> None:
    """Create an operator; prints their TOTP enrolment and recovery codes once."""
    password_hash = _password(email, password_stdin)
    cipher, secret = _secrets()
    with transaction() as conn:
        done = accounts.create_operator(conn, email=email, role=role.value,
                                        password_hash=password_hash, name=name, cipher=cipher,
                                        secret=secret, actor=actor())
    _show_enrolment(done, as_json)


@operators_app.command("list")
def operators_list(as_json: JsonFlag = False) -> None:
    """List operators."""
    with transaction() as conn:
        rows = [_data(o) for o in accounts.list_operators(conn)]
    if as_json:
        emit_json(rows)
    else:
        emit_table(rows, COLUMNS)


def _change(email: str, change: OperatorChange, as_json: bool) -> None:
    with transaction() as conn:
        found = accounts.get_by_email(conn, email)
        _show(accounts.change_operator(conn, found.id, change, actor=actor()), as_json)


@operators_app.command("disable")
def operators_disable(email: OperatorEmail, as_json: JsonFlag = False) -> None:
    """Disable an operator: they cannot sign in, and their sessions end at once."""
    _change(email, OperatorChange(disabled=True), as_json)


@operators_app.command("enable")
def operators_enable(email: OperatorEmail, as_json: JsonFlag = False) -> None:
    """Enable a disabled operator again."""
    _change(email, OperatorChange(disabled=False), as_json)


@operators_app.command("reset-totp")
def operators_reset_totp(email: OperatorEmail, as_json: JsonFlag = False) -> None:
    """New TOTP secret and recovery codes for an operator (printed once); ends sessions."""
    cipher, secret = _secrets()
    with transaction() as conn:
        found = accounts.get_by_email(conn, email)
        done = accounts.reset_totp(conn, found.id, cipher=cipher, secret=secret, actor=actor())
    _show_enrolment(done, as_json)


@operators_app.command("set-password")
def operators_set_password(email: OperatorEmail, password_stdin: PasswordStdin = False,
                           as_json: JsonFlag = False) -> None:
    """Set an operator's password; ends their sessions."""
    with transaction() as conn:
        found = accounts.get_by_email(conn, email)
    password_hash = _password(found.email, password_stdin)
    with transaction() as conn:
        accounts.set_password(conn, found.id, password_hash, actor=actor())
        _show(accounts.get_operator(conn, found.id), as_json)


def register(app: typer.Typer) -> None:
    app.add_typer(operators_app, name="operators")
