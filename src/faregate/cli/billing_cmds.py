"""Billing for operators: redemption codes."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Annotated

import typer

from faregate.billing.redemption import issue_codes, list_codes
from faregate.billing.refunds import refund_payment
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
from faregate.db.engine import create_engine
from faregate.db.runner import Database
from faregate.kit.money import nano_to_usd
from faregate.payments.factory import processor_from

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




payments_app = typer.Typer(help="Payments made through the processor.", no_args_is_help=True)


@payments_app.command("refund")
def payments_refund(
    payment_id: Annotated[str, typer.Argument(metavar="PAYMENT_ID", help="pi_… of the top-up.")],
    amount_usd: Annotated[str | None, typer.Option(
        "--amount", help="Part of the payment, in USD; default all.")] = None,
    idempotency_key: Annotated[str | None, typer.Option(
        help="Repeating the command with the same key refunds only once.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Refund a top-up to the card and take its credit back (what was already spent is owed,
    and billing is suspended until a payment settles it)."""
    amount = parse_usd(amount_usd, "--amount", positive=True) if amount_usd else None
    key = idempotency_key or f"cli-refund:{uuid.uuid4().hex}"
    s = settings()

    async def run() -> int:
        db = Database(create_engine(s.resolved_database_url, pool_size=1), threads=1)
        processor = processor_from(s, db)
        try:
            return await refund_payment(db, processor, payment_id=payment_id,
                                        amount_nano=amount, actor=actor(),
                                        idempotency_key=key)
        finally:
            await processor.aclose()
            db.close()
    owed_nano = asyncio.run(run())
    data = {"payment_id": payment_id, "owed_usd": nano_to_usd(owed_nano)}
    if as_json:
        emit_json(data)
    else:
        typer.echo(f"refunded {payment_id}; owed after the refund: ${nano_to_usd(owed_nano)}")


def register(app: typer.Typer) -> None:
    app.add_typer(codes_app, name="codes")
    app.add_typer(payments_app, name="payments")
