"""Users and their API keys."""

from __future__ import annotations

import datetime as dt
import sys
from types import EllipsisType
from typing import Annotated, Any

import typer

from faregate.api_keys.service import (
    KeyInfo,
    KeySpec,
    get_key,
    issue_key,
    list_keys,
    revoke_key,
)
from faregate.api_keys.spend_limits import set_spend_limit
from faregate.cli._edge import (
    Email,
    JsonFlag,
    actor,
    emit_json,
    emit_record,
    emit_table,
    iso,
    parse_usd,
    settings,
    transaction,
)
from faregate.identity.users import create_user, get_user_by_email
from faregate.kit.money import nano_to_usd
from faregate.ledger.limits import PERIODS

users_app = typer.Typer(help="Users (each with a personal organization).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)


@users_app.command("create")
def users_create(email: Email,
                 as_json: JsonFlag = False) -> None:
    """Create a user and their organization with an empty credit account."""
    with transaction() as conn:
        user = create_user(conn, email)
    data = {"id": user.id, "email": user.email, "organization_id": user.organization_id}
    if as_json:
        emit_json(data)
    else:
        typer.echo(f"created user {user.id} <{user.email}> in organization "
                   f"{user.organization_id}")


@keys_app.command("create")
def keys_create(
    email: Email,
    name: Annotated[str, typer.Option(help="A label for the key.")] = "default",
    spend_limit: Annotated[str | None, typer.Option(
        help="Most the key may spend per period, in USD (e.g. 10.00).")] = None,
    period: Annotated[str, typer.Option(help="day, week or month (UTC).")] = "month",
    expires_in_days: Annotated[int | None, typer.Option(min=1, max=3650)] = None,
    read_only: Annotated[bool, typer.Option(help="Only list models and read requests.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Issue a service key (no phone verification: the operator vouches for it). The key is
    shown once and never stored; only its hash is."""
    pepper = settings().secret("key_pepper")
    if period not in PERIODS:
        raise typer.BadParameter("must be day, week or month", param_hint="--period")
    spec = KeySpec(
        name=name, kind="service", permissions="read_only" if read_only else "all",
        expires_at=(dt.datetime.now(dt.UTC) + dt.timedelta(days=expires_in_days)
                    if expires_in_days else None),
        spend_limit_nano=(parse_usd(spend_limit, "--spend-limit", positive=True)
                          if spend_limit is not None else None),
        spend_limit_period=period if spend_limit is not None else None)
    with transaction() as conn:
        user = get_user_by_email(conn, email)
        issued = issue_key(conn, organization_id=user.organization_id, user_id=user.id,
                           name=name, pepper=pepper, spec=spec)
    if as_json:
        emit_json({"id": issued.id, "key": issued.key, "redacted": issued.redacted,
                   "name": issued.name})
    else:
        typer.echo(issued.key)
        sys.stderr.write(f"key {issued.id} ({issued.name!r}) for {user.email}: store it now, "
                         "it cannot be shown again\n")


def _key_summary(info: KeyInfo) -> dict[str, Any]:
    return {"id": info.id, "name": info.name, "redacted": info.redacted, "kind": info.kind,
            "project_id": info.project_id, "created_at": iso(info.created_at),
            "last_used_at": iso(info.last_used_at), "expires_at": iso(info.expires_at),
            "revoked_at": iso(info.revoked_at)}


@keys_app.command("list")
def keys_list(email: Email,
              as_json: JsonFlag = False) -> None:
    """List an organization's keys (redacted)."""
    with transaction() as conn:
        user = get_user_by_email(conn, email)
        keys = list_keys(conn, user.organization_id)
    rows = [_key_summary(k) for k in keys]
    if as_json:
        emit_json(rows)
    else:
        emit_table(rows, ["id", "name", "redacted", "created_at", "revoked_at"])


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The key's id (key_...).")],
    as_json: JsonFlag = False,
) -> None:
    """Revoke a key; repeating it is harmless and keeps the first revocation time."""
    with transaction() as conn:
        info = revoke_key(conn, key_id)
    data = {**_key_summary(info), "organization_id": info.organization_id}
    if as_json:
        emit_json(data)
    else:
        emit_record(data)


@keys_app.command("set-limit")
def keys_set_limit(
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The key's id (key_...).")],
    spend_limit: Annotated[str | None, typer.Option(
        help="Most the key may spend per period, in USD (e.g. 10.00).")] = None,
    period: Annotated[str | None, typer.Option(
        help="day, week or month (UTC); default: the key's current period.")] = None,
    none: Annotated[bool, typer.Option("--none", help="Remove the key's limit.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Change a key's spend limit; it holds on every server within 2 seconds. A lowered limit
    stops requests at exactly the new amount."""
    if none == (spend_limit is not None or period is not None):
        raise typer.BadParameter("give --spend-limit and/or --period, or --none",
                                 param_hint="--spend-limit")
    if period is not None and period not in PERIODS:
        raise typer.BadParameter("must be day, week or month", param_hint="--period")
    limit: int | EllipsisType | None = None if none else ...
    if spend_limit is not None:
        limit = parse_usd(spend_limit, "--spend-limit", positive=True)
    with transaction() as conn:
        org = get_key(conn, key_id).organization_id
        info = set_spend_limit(conn, key_id, organization_id=org, limit_nano=limit,
                               period=period if period is not None else ...,
                               actor=actor())
    data = {**_key_summary(info), "organization_id": info.organization_id,
            "spend_limit_usd": nano_to_usd(info.spend_limit_nano)
            if info.spend_limit_nano is not None else None,
            "spend_limit_period": info.spend_limit_period}
    if as_json:
        emit_json(data)
    else:
        emit_record(data)


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
    app.add_typer(keys_app, name="keys")
