"""What every command shares: settings, one engine per invocation, parsing and output."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Annotated, Any

import sqlalchemy as sa
import typer
from sqlalchemy.engine import make_url

from faregate.config import Settings, get_settings
from faregate.db.engine import create_engine
from faregate.kit.money import MoneyFormatError, usd_to_nano

Email = Annotated[str, typer.Argument(metavar="EMAIL", help="The user's email address.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of text.")]


@cache
def settings() -> Settings:
    return get_settings()


@contextmanager
def transaction() -> Iterator[sa.Connection]:
    """One engine for this invocation, one transaction for this command; commits on success."""
    engine = create_engine(settings().resolved_database_url, pool_size=1)
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli:unknown"


def redact_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def parse_usd(text: str, param: str, *, positive: bool = False) -> int:
    """A decimal USD string to nano-USD; a usage error (exit 2) when it is not a valid amount."""
    try:
        nano = usd_to_nano(text)
    except MoneyFormatError as exc:
        raise typer.BadParameter(str(exc), param_hint=param) from None
    if positive and nano <= 0:
        raise typer.BadParameter(f"must be greater than 0: {text!r}", param_hint=param)
    if nano < 0:
        raise typer.BadParameter(f"must not be negative: {text!r}", param_hint=param)
    return nano


def iso(value: dt.datetime | None) -> str | None:
    """ISO-8601 in UTC with a Z; a naive value (SQLite) is UTC already."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def emit_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """Left-aligned columns; None shows as '-'."""
    if not rows:
        typer.echo("(none)")
        return
    cells = [[_cell(row.get(col)) for col in columns] for row in rows]
    widths = [max(len(col), *(len(r[i]) for r in cells)) for i, col in enumerate(columns)]
    typer.echo("  ".join(col.ljust(w) for col, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return ",".join(k if k == v else f"{k}={v}" for k, v in value.items())
    return str(value)


def emit_record(data: Mapping[str, Any]) -> None:
    width = max(len(k) for k in data)
    for key, value in data.items():
        typer.echo(f"{key.ljust(width)}  {_cell(value)}")
