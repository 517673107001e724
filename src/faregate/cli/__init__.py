"""The `faregate` command: the operator's edge. Each command runs in one transaction against the
same database a running server uses. `--json` prints exactly one JSON document on stdout.

Exit codes: 0 success; 1 refused or not found (or `ledger verify` found problems); 2 usage
errors, including malformed amounts."""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from faregate.cli import (
    account_cmds,
    billing_cmds,
    catalog_cmds,
    console_cmds,
    ledger_cmds,
    operator_cmds,
    org_cmds,
    price_group_cmds,
    request_cmds,
    run_cmds,
    tier_cmds,
)
from faregate.errors import FaregateError, InvalidRequest
from faregate.kit.money import MoneyFormatError

app = typer.Typer(
    name="faregate",
    help="Faregate: an OpenAI-compatible gateway with exact prepaid billing.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
run_cmds.register(app)
account_cmds.register(app)
ledger_cmds.register(app)
catalog_cmds.register(app)
billing_cmds.register(app)
operator_cmds.register(app)
org_cmds.register(app)
console_cmds.register(app)
price_group_cmds.register(app)
request_cmds.register(app)
tier_cmds.register(app)


def _fail(message: str, code: int) -> None:
    sys.stderr.write(f"error: {message}\n")
    sys.exit(code)


def main() -> None:
    try:
        app(prog_name="faregate")
    except (InvalidRequest, MoneyFormatError) as exc:
        _fail(str(exc), 2)
    except FaregateError as exc:
        _fail(exc.message, 1)
    except ValidationError as exc:
        _fail(_settings_problems(exc), 2)
    except SQLAlchemyError as exc:
        _fail(_database_problem(exc), 1)


def _settings_problems(exc: ValidationError) -> str:
    # Without the input values: a database URL may carry a password.
    problems = [
        f"FAREGATE_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
        for err in exc.errors(include_url=False, include_input=False)
    ]
    return "invalid settings: " + "; ".join(problems)


def _database_problem(exc: SQLAlchemyError) -> str:
    detail = str(getattr(exc, "orig", None) or exc).strip()
    message = f"database error: {detail}"
    if "no such table" in detail or ("relation" in detail and "does not exist" in detail):
        message += " (run `faregate db upgrade` first)"
    return message


__all__ = ["app", "main"]
