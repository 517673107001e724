"""Requests: what one request cost and, when it was logged, what it said."""

from __future__ import annotations

from typing import Annotated

import typer

from faregate.cli._edge import JsonFlag, emit_json, emit_record, settings, transaction
from faregate.errors import NotFound
from faregate.usage.records import request_record
from faregate.usage.request_logs import read_log, sealer_for

requests_app = typer.Typer(help="Requests made through the gateway.", no_args_is_help=True)


@requests_app.command("show")
def show(
    request_id: Annotated[str, typer.Argument(metavar="REQUEST_ID",
                                              help="The x-request-id of the request.")],
    with_log: Annotated[bool, typer.Option(
        "--log", help="Also show the logged request and response bodies.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """A request's usage record (any organization's) and, with --log, its request log."""
    s = settings()
    with transaction() as conn:
        record = request_record(conn, request_id, None)
        entry = (read_log(conn, request_id, sealer_for(s.secret("encryption_key")),
                          organization_id=None) if with_log else None)
    if record is None and entry is None:
        raise NotFound(f"No request {request_id!r}" + (" and no log of it." if with_log else "."))
    log = None
    if entry is not None:
        log = {**entry.as_json(s.request_log_retention_days),
               "organization_id": entry.organization_id}
    if as_json:
        emit_json({"record": record, "log": log} if with_log else record)
        return
    if record is not None:
        emit_record(record)
    else:
        typer.echo(f"no usage record for {request_id} (the request did not reach settlement)")
    if not with_log:
        return
    if log is None:
        typer.echo("\nno request log (request logging was off for it, or the log expired)")
        return
    typer.echo("")
    emit_record({k: v for k, v in log.items() if k not in ("request_body", "response_body")})
    typer.echo("\n--- request body ---")
    typer.echo(log["request_body"])
    typer.echo("--- response body ---")
    typer.echo(log["response_body"])


def register(app: typer.Typer) -> None:
    app.add_typer(requests_app, name="requests")
