"""Money: granting credit, balances, and checking the ledger."""

from __future__ import annotations

from typing import Annotated

import typer

from faregate.cli._edge import (
    Email,
    JsonFlag,
    actor,
    emit_json,
    emit_record,
    iso,
    parse_usd,
    transaction,
)
from faregate.console.actions import grant_credit
from faregate.identity.users import get_user_by_email
from faregate.kit.money import nano_to_usd
from faregate.ledger.accounts import balance as account_balance
from faregate.ledger.accounts import org_account_id
from faregate.ledger.verify import verify
from faregate.usage.rollup import rollup_problems

credits_app = typer.Typer(help="Prepaid credit.", no_args_is_help=True)
ledger_app = typer.Typer(help="The double-entry ledger.", no_args_is_help=True)

IdempotencyKey = Annotated[str | None, typer.Option(
    help="Repeating the command with the same key posts the transfer only once.")]


@credits_app.command("grant")
def credits_grant(
    email: Email,
    amount_usd: Annotated[str, typer.Argument(metavar="AMOUNT_USD",
                                              help="Decimal USD, up to 9 decimals.")],
    reason: Annotated[str, typer.Option(help="Why; recorded on the transfer.")],
    idempotency_key: IdempotencyKey = None,
    as_json: JsonFlag = False,
) -> None:
    """Grant credit from the platform's grants account to a user's organization (audited)."""
    amount_nano = parse_usd(amount_usd, "AMOUNT_USD", positive=True)
    with transaction() as conn:
        user = get_user_by_email(conn, email)
        transfer = grant_credit(conn, user.organization_id, amount_nano, actor=actor(),
                                reason=reason, idempotency_key=idempotency_key).transfer
    data = {"id": transfer.id, "organization_id": user.organization_id,
            "amount_usd": nano_to_usd(transfer.amount_nano), "kind": transfer.kind,
            "reason": transfer.reason, "actor": transfer.actor,
            "idempotency_key": transfer.idempotency_key, "created_at": iso(transfer.created_at)}
    if as_json:
        emit_json(data)
    else:
        typer.echo(f"transfer {transfer.id}: granted {data['amount_usd']} USD to {user.email} "
                   f"(organization {user.organization_id})")


def balance(email: Email,
            as_json: JsonFlag = False) -> None:
    """Balance (credits - debits), held by open leases, and available (the difference)."""
    with transaction() as conn:
        user = get_user_by_email(conn, email)
        bal = account_balance(conn, org_account_id(conn, user.organization_id))
    data = {"balance_usd": nano_to_usd(bal.balance_nano), "held_usd": nano_to_usd(bal.held_nano),
            "available_usd": nano_to_usd(bal.available_nano)}
    if as_json:
        emit_json(data)
    else:
        emit_record(data)


@ledger_app.command("verify")
def ledger_verify(as_json: JsonFlag = False) -> None:
    """Check every ledger invariant, and that the usage rollups equal the usage records;
    exit 1 when any does not hold."""
    with transaction() as conn:
        problems = verify(conn) + rollup_problems(conn)
    if as_json:
        emit_json({"ok": not problems, "problems": problems})
    elif problems:
        for problem in problems:
            typer.echo(problem)
    else:
        typer.echo("ledger OK")
    if problems:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(credits_app, name="credits")
    app.command()(balance)
    app.add_typer(ledger_app, name="ledger")
