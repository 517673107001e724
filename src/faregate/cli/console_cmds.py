"""The console's user and organization actions for scripting: deactivate and reactivate,
reset a phone number, adjust credit, and search the audit trail. The same service functions as
/admin/api (faregate.console), audited with the actor `cli:<login>`."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import sqlalchemy as sa
import typer

from faregate.audit.trail import AuditEvent
from faregate.cli._edge import JsonFlag, actor, emit_json, emit_record, emit_table, iso, transaction
from faregate.cli.account_cmds import users_app
from faregate.cli.ledger_cmds import IdempotencyKey, credits_app
from faregate.cli.org_cmds import OrgArg, orgs_app, resolve_org
from faregate.console import actions
from faregate.console.actions import Activation
from faregate.console.audit_search import AuditQuery, search_events
from faregate.identity.users import get_user_by_email
from faregate.kit.money import MoneyFormatError, nano_to_usd, usd_to_nano

audit_app = typer.Typer(help="The audit trail (append-only).", no_args_is_help=True)

Reason = Annotated[str, typer.Option(help="Why; recorded in the audit trail.")]
UserArg = Annotated[str, typer.Argument(metavar="USER", help="The user's email or id.")]


def _user_id(conn: sa.Connection, user: str) -> str:
    return get_user_by_email(conn, user).id if "@" in user else user


def _emit_activation(kind: str, done: Activation, as_json: bool) -> None:
    data = {"id": done.id, "deactivated": done.deactivated_at is not None,
            "deactivated_at": iso(done.deactivated_at), "reason": done.reason}
    if as_json:
        emit_json(data)
    elif done.deactivated_at is not None:
        typer.echo(f"{kind} {done.id} deactivated: {done.reason}")
    else:
        typer.echo(f"{kind} {done.id} reactivated")


@orgs_app.command("deactivate")
def orgs_deactivate(org: OrgArg, reason: Reason, as_json: JsonFlag = False) -> None:
    """Deactivate an organization: every server answers its keys with 401
    account_deactivated within 2 seconds, until an operator reactivates it."""
    with transaction() as conn:
        done = actions.set_org_active(conn, resolve_org(conn, org), active=False, reason=reason,
                                      actor=actor())
    _emit_activation("organization", done, as_json)


@orgs_app.command("reactivate")
def orgs_reactivate(org: OrgArg, reason: Reason, as_json: JsonFlag = False) -> None:
    """Lift an organization's deactivation."""
    with transaction() as conn:
        done = actions.set_org_active(conn, resolve_org(conn, org), active=True, reason=reason,
                                      actor=actor())
    _emit_activation("organization", done, as_json)


@users_app.command("deactivate")
def users_deactivate(user: UserArg, reason: Reason, as_json: JsonFlag = False) -> None:
    """Deactivate a user: they cannot sign in, their sessions end, and the keys they created
    answer 401 account_deactivated."""
    with transaction() as conn:
        done = actions.set_user_active(conn, _user_id(conn, user), active=False, reason=reason,
                                       actor=actor())
    _emit_activation("user", done, as_json)


@users_app.command("reactivate")
def users_reactivate(user: UserArg, reason: Reason, as_json: JsonFlag = False) -> None:
    """Lift a user's deactivation."""
    with transaction() as conn:
        done = actions.set_user_active(conn, _user_id(conn, user), active=True, reason=reason,
                                       actor=actor())
    _emit_activation("user", done, as_json)


@users_app.command("reset-phone")
def users_reset_phone(user: UserArg, reason: Reason, as_json: JsonFlag = False) -> None:
    """Forget a user's verified phone number (they verify one again before making keys)."""
    with transaction() as conn:
        user_id = _user_id(conn, user)
        actions.reset_phone(conn, user_id, reason=reason, actor=actor())
    if as_json:
        emit_json({"id": user_id, "phone_verified": False})
    else:
        typer.echo(f"user {user_id}: phone number reset")


@credits_app.command("adjust")
def credits_adjust(
    org: OrgArg,
    amount_usd: Annotated[str, typer.Argument(
        metavar="AMOUNT_USD", help="Signed decimal USD: 5 adds, -5 takes away (never below "
        "what is available).")],
    reason: Reason,
    idempotency_key: IdempotencyKey = None,
    as_json: JsonFlag = False,
) -> None:
    """Correct an organization's balance up or down by a ledger transfer with a reason."""
    try:
        amount = usd_to_nano(amount_usd)
    except MoneyFormatError as exc:
        raise typer.BadParameter(str(exc), param_hint="AMOUNT_USD") from None
    with transaction() as conn:
        org_id = resolve_org(conn, org)
        done = actions.adjust_credit(conn, org_id, amount, reason=reason, actor=actor(),
                                     idempotency_key=idempotency_key)
    data = {"transfer_id": done.transfer.id, "organization_id": org_id,
            "amount_usd": nano_to_usd(amount),
            "balance_before_usd": nano_to_usd(done.before.balance_nano),
            "balance_after_usd": nano_to_usd(done.after.balance_nano)}
    if as_json:
        emit_json(data)
    else:
        emit_record(data)


def _event(e: AuditEvent) -> dict[str, Any]:
    detail = dict(e.detail or {})
    return {"id": e.id, "created_at": iso(e.created_at), "action": e.action, "actor": e.actor,
            "target": e.target, "organization_id": e.organization_id, "ip": e.ip,
            "before": detail.pop("before", None), "after": detail.pop("after", None),
            "detail": detail or None}


def _time(text: str | None, param: str) -> dt.datetime | None:
    if text is None:
        return None
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter("an ISO-8601 time, e.g. 2026-11-28T10:00:00Z",
                                 param_hint=param) from None
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t


@audit_app.command("search")
def audit_search(
    actor_: Annotated[str | None, typer.Option("--actor", help="e.g. operator:op_…, "
                                               "cli:alice")] = None,
    action: Annotated[str | None, typer.Option(help="e.g. credit.granted, or credit.* for a "
                                               "prefix")] = None,
    target: Annotated[str | None, typer.Option(help="e.g. org:org_…, user:user_…")] = None,
    org: Annotated[str | None, typer.Option(help="Events of this organization (id).")] = None,
    since: Annotated[str | None, typer.Option(help="From this time (ISO-8601, UTC).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time.")] = None,
    before: Annotated[int | None, typer.Option(help="Only events older than this id.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Search the audit trail, newest first."""
    query = AuditQuery(actor=actor_, action=action, target=target, organization_id=org,
                       since=_time(since, "--since"), until=_time(until, "--until"))
    with transaction() as conn:
        page = search_events(conn, query, limit=limit, before_id=before)
    rows = [_event(e) for e in page.data]
    if as_json:
        emit_json({"data": rows, "next_cursor": page.next_cursor})
    else:
        emit_table(rows, ["id", "created_at", "action", "actor", "target", "before", "after"])


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
