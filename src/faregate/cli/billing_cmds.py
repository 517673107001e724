"""Billing for operators: redemption codes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from faregate.billing.redemption import issue_codes, list_codes
from faregate.cli._edge import (
    JsonFlag,
    actor,
    emit_json,
    emit_table,
    iso,
    parse_usd,
    settings,
    transaction,
)
from faregate.kit.money import nano_to_usd

codes_app = typer.Typer(help="Redemption codes (prepaid credit without a card).",
                        no_args_is_help=True)


@codes_app.command("create")
def codes_create(
    amount_usd: Annotated[str, typer.Argument(metavar="AMOUNT_USD", help="Value of each code.")],
    count: Annotated[int, typer.Option(min=1, max=1000, help="How many codes.")] = 1,
    expires_in_days: Annotated[int | None, typer.Option(min=1, max=3650)] = None,
    as_json: JsonFlag = False,
) -> None:
    """Issue single-use codes of a fixed value; they are printed once and stored hashed."""
    amount = parse_usd(amount_usd, "AMOUNT_USD", positive=True)
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=expires_in_days)
               if expires_in_days else None)
    secret = settings().secret("session_secret")
    with transaction() as conn:
        codes = issue_codes(conn, amount_nano=amount, count=count, expires_at=expires,
                            actor=actor(), secret=secret)
    if as_json:
        emit_json({"amount_usd": nano_to_usd(amount), "expires_at": iso(expires),
                   "codes": codes})
    else:
        for code in codes:
            typer.echo(code)


@codes_app.command("list")
def codes_list(as_json: JsonFlag = False) -> None:
    """Issued codes (their last characters only), newest first."""
    with transaction() as conn:
        rows = [{"id": c.id, "ends_with": c.hint, "amount_usd": nano_to_usd(c.amount_nano),
                 "created_at": iso(c.created_at), "expires_at": iso(c.expires_at),
                 "redeemed_at": iso(c.redeemed_at),
                 "redeemed_by": c.redeemed_by_organization} for c in list_codes(conn)]
    if as_json:
        emit_json(rows)
    else:
        emit_table(rows, ["id", "ends_with", "amount_usd", "expires_at", "redeemed_at",
                          "redeemed_by"])


def register(app: typer.Typer) -> None:
    app.add_typer(codes_app, name="codes")
