"""Organizations: request logging (docs/usage.md#request-logging)."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
import typer

from faregate.catalog.model_admin import set_org_price_group
from faregate.cli._edge import JsonFlag, actor, emit_json, iso, settings, transaction
from faregate.identity.users import get_user_by_email
from faregate.usage.request_logs import MAX_DAYS, logging_until, set_logging

orgs_app = typer.Typer(help="Organizations.", no_args_is_help=True)

OrgArg = Annotated[str, typer.Argument(
    metavar="ORG_ID", help="The organization's id, or a user's email (their own organization).")]


def resolve_org(conn: sa.Connection, org: str) -> str:
    return get_user_by_email(conn, org).organization_id if "@" in org else org


@orgs_app.command("request-log")
def request_log(
    org: OrgArg,
    on: Annotated[bool, typer.Option("--on", help="Log the organization's requests.")] = False,
    off: Annotated[bool, typer.Option("--off", help="Stop logging them.")] = False,
    days: Annotated[int, typer.Option(
        min=1, max=MAX_DAYS, help="With --on: for how many days (then it stops by itself).")] = 1,
    as_json: JsonFlag = False,
) -> None:
    """Turn request logging on or off for one organization, or (with neither) show it.

    Logged: the request and response bodies, encrypted, kept FAREGATE_REQUEST_LOG_RETENTION_DAYS.
    The organization's owners see the change in their audit trail and a banner; servers apply
    it within 2 seconds."""
    if on and off:
        raise typer.BadParameter("give --on or --off, not both", param_hint="--on/--off")
    with transaction() as conn:
        org_id = resolve_org(conn, org)
        if on or off:
            until = set_logging(conn, org_id, days=days if on else None, actor=actor())
        else:
            until = logging_until(conn, org_id)
    s = settings()
    data = {"organization_id": org_id, "enabled": until is not None or s.request_log == "all",
            "until": iso(until), "all_requests": s.request_log == "all",
            "retention_days": s.request_log_retention_days}
    if as_json:
        emit_json(data)
        return
    state = f"on until {data['until']}" if until is not None else "off"
    typer.echo(f"request logging for organization {org_id}: {state} "
               f"(logs are kept {s.request_log_retention_days} days)")
    if s.request_log == "all":
        typer.echo("note: FAREGATE_REQUEST_LOG=all logs every organization's requests")


@orgs_app.command("set-price-group")
def set_price_group(
    org: OrgArg,
    group: Annotated[str, typer.Argument(metavar="GROUP", help='A price group ("default": '
                                         "list prices times the default group's).")],
) -> None:
    """Put an organization in a price group (servers apply it within 2 seconds)."""
    with transaction() as conn:
        org_id = resolve_org(conn, org)
        done = set_org_price_group(conn, org_id, group, actor=actor())
    typer.echo(f"organization {org_id}: price group {done}")


def register(app: typer.Typer) -> None:
    app.add_typer(orgs_app, name="orgs")
