"""Running things: the server, the worker, migrations and the development model."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from faregate.cli._edge import JsonFlag, emit_json, redact_url, settings
from faregate.config import get_settings

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
devmodel_app = typer.Typer(help="The built-in development model.", no_args_is_help=True)


def serve(
    host: Annotated[str | None, typer.Option(help="Listen address [default: settings].")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port [default: settings].")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes [default: settings].")]
    = None,
) -> None:
    """Run the gateway."""
    from faregate.server import run

    overrides: dict[str, Any] = {
        name: value for name, value in (("host", host), ("port", port), ("workers", workers))
        if value is not None
    }
    run(get_settings(**overrides))


def worker() -> None:
    """Run the background worker (sweeper and other periodic jobs)."""
    from faregate.worker.main import run_worker

    run_worker(settings())


@db_app.command("upgrade")
def db_upgrade(as_json: JsonFlag = False) -> None:
    """Apply all pending migrations."""
    from faregate.db.migrate import upgrade  # alembic is slow to import; only needed here

    url = settings().resolved_database_url
    upgrade(url)
    shown = redact_url(url)
    if as_json:
        emit_json({"database_url": shown, "up_to_date": True})
    else:
        typer.echo(f"database at {shown} is up to date")


@devmodel_app.command("serve")
def devmodel_serve(
    host: Annotated[str, typer.Option(help="Listen address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Listen port.")] = 9100,
    token_latency_ms: Annotated[
        float, typer.Option(min=0, help="Delay before each streamed token.")] = 0,
) -> None:
    """Serve the development model on its own."""
    from faregate.devmodel.server import run

    run(host, port, token_latency_ms)


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(worker)
    app.add_typer(db_app, name="db")
    app.add_typer(devmodel_app, name="devmodel")
