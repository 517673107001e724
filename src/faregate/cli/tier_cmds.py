"""Usage tiers and rate limits (docs/operators.md#usage-tiers-and-rate-limits): `tiers list|set`,
`orgs set-tier`, `keys set-rate-limit`. Each change is audited with before and after; servers
apply it within a few seconds."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from faregate.audit.changes import record_change
from faregate.cli._edge import (
    JsonFlag,
    actor,
    emit_json,
    emit_record,
    emit_table,
    parse_usd,
    transaction,
)
from faregate.cli.account_cmds import keys_app
from faregate.cli.org_cmds import OrgArg, orgs_app, resolve_org
from faregate.kit.money import nano_to_usd
from faregate.tiers import service as tiers

tiers_app = typer.Typer(help="Usage tiers: thresholds and RPM/TPM limits.",
                        no_args_is_help=True)

_COLUMNS = ["tier", "name", "min_paid_usd", "min_age_days", "rpm", "tpm", "key_rpm", "key_tpm"]
UNLIMITED = "unlimited"


def _row(t: tiers.Tier) -> dict[str, Any]:
    data = t.as_dict()
    paid = data.pop("min_paid_nano")
    return {"tier": t.tier, "name": t.name,
            "min_paid_usd": None if paid is None else str(nano_to_usd(paid)), **{
                k: data[k] for k in _COLUMNS[3:]}}


def _rate(text: str | None, param: str) -> tuple[bool, int | None]:
    """(given, value): "unlimited" or "none" clears a limit."""
    if text is None:
        return False, None
    if text.lower() in (UNLIMITED, "none"):
        return True, None
    try:
        return True, tiers.check_rate(int(text), param)
    except ValueError:
        raise typer.BadParameter("a whole number, or 'unlimited'", param_hint=param) from None


@tiers_app.command("list")
def list_tiers(as_json: JsonFlag = False) -> None:
    """The tiers, their thresholds (paid and age) and limits (empty: unlimited)."""
    with transaction() as conn:
        rows = [_row(t) for t in tiers.list_tiers(conn)]
    if as_json:
        emit_json({"data": rows})
        return
    emit_table(rows, _COLUMNS)


RateOpt = Annotated[str | None, typer.Option(help="Per minute; 'unlimited' clears it.")]


@tiers_app.command("set")
def set_tier(
    tier: Annotated[int, typer.Argument(help="The tier's number.")],
    name: Annotated[str | None, typer.Option(help="Its name.")] = None,
    min_paid: Annotated[str | None, typer.Option(
        help="USD paid to reach it; 'none': only an operator sets it.")] = None,
    min_age_days: Annotated[int | None, typer.Option(min=0, help="Organization age.")] = None,
    rpm: RateOpt = None, tpm: RateOpt = None,
    key_rpm: RateOpt = None, key_tpm: RateOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Change a tier's name, thresholds or limits (the options given)."""
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = name
    if min_paid is not None:
        changes["min_paid_nano"] = None if min_paid.lower() == "none" else \
            parse_usd(min_paid, "--min-paid")
    if min_age_days is not None:
        changes["min_age_days"] = min_age_days
    for field, text in (("rpm", rpm), ("tpm", tpm), ("key_rpm", key_rpm),
                        ("key_tpm", key_tpm)):
        given, value = _rate(text, f"--{field.replace('_', '-')}")
        if given:
            changes[field] = value
    with transaction() as conn:
        before, after = tiers.update_tier(conn, tier, changes)
        record_change(conn, actor=actor(), action="tier.updated", target=f"tier:{tier}",
                      before=before.as_dict(), after=after.as_dict())
    if as_json:
        emit_json(_row(after))
        return
    emit_record(_row(after))


def set_org_tier(
    org: OrgArg,
    tier: Annotated[int | None, typer.Argument(help="The tier to set (100: Unlimited).")] = None,
    auto: Annotated[bool, typer.Option(
        "--auto", help="Clear the override: the earned tier applies.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Set an organization's tier (an override of the earned one), or --auto to clear it."""
    if (tier is None) == (not auto):
        raise typer.BadParameter("give a TIER or --auto", param_hint="TIER/--auto")
    with transaction() as conn:
        org_id = resolve_org(conn, org)
        before, after = tiers.set_override(conn, org_id, None if auto else tier)
        record_change(conn, actor=actor(), action="organization.tier_set",
                      target=f"org:{org_id}", before=before, after=after,
                      organization_id=org_id)
    if as_json:
        emit_json({"organization_id": org_id, **after})
        return
    emit_record({"organization_id": org_id, **after})


def set_key_rate_limit(
    key_id: Annotated[str, typer.Argument(help="The key's id.")],
    rpm: RateOpt = None, tpm: RateOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Set a key's own RPM/TPM (the lower of it and the tier's per-key limit applies);
    'unlimited' clears one."""
    with transaction() as conn:
        _, current = tiers.key_rate_limits(conn, key_id)
        given_rpm, new_rpm = _rate(rpm, "--rpm")
        given_tpm, new_tpm = _rate(tpm, "--tpm")
        org, before, after = tiers.set_key_rate_limits(
            conn, key_id, new_rpm if given_rpm else current["rpm_limit"],
            new_tpm if given_tpm else current["tpm_limit"])
        record_change(conn, actor=actor(), action="api_key.rate_limits_set",
                      target=f"key:{key_id}", before=before, after=after,
                      organization_id=org)
    if as_json:
        emit_json({"id": key_id, **after})
        return
    emit_record({"id": key_id, **after})


def register(app: typer.Typer) -> None:
    app.add_typer(tiers_app, name="tiers")
    orgs_app.command("set-tier")(set_org_tier)
    keys_app.command("set-rate-limit")(set_key_rate_limit)
