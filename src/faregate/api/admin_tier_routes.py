"""/admin/api: usage tiers (thresholds and RPM/TPM limits), an organization's tier override and
a key's own rate limits. Every operator reads; admins change, and each change is audited with
what it was before and after. The gateway applies a change within a few seconds (its tier
cache, and its key cache for overrides and key limits)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from faregate.api.admin_deps import AdminOperator, CurrentOperator
from faregate.api.deps import ClientInfo, Ctx
from faregate.audit.changes import record_change
from faregate.tiers import service as tiers

router = APIRouter()


class TierIn(BaseModel):
    """The fields to change; those left out stay as they are. A null limit is no limit; a null
    min_paid_nano makes the tier one only an operator can set."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=40)
    min_paid_nano: int | None = Field(default=None, ge=0)
    min_age_days: int | None = Field(default=None, ge=0)
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    key_rpm: int | None = Field(default=None, ge=1)
    key_tpm: int | None = Field(default=None, ge=1)


class OrgTierIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tier: int | None = Field(description="The tier to set, or null to go back to the earned "
                             "(automatic) tier")


class KeyRatesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rpm: int | None = Field(default=None, ge=1, description="null: the tier's only")
    tpm: int | None = Field(default=None, ge=1, description="null: the tier's only")


@router.get("/tiers", summary="List the usage tiers: thresholds and RPM/TPM limits")
async def list_tiers(ctx: Ctx, operator: CurrentOperator) -> dict[str, Any]:
    found = await ctx.db.run(tiers.list_tiers)
    return {"data": [t.as_dict() for t in found]}


@router.put("/tiers/{tier}", summary="Change a usage tier's name, thresholds or limits")
async def put_tier(tier: int, body: TierIn, ctx: Ctx, client: ClientInfo,
                   admin: AdminOperator) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)

    def change(conn: sa.Connection) -> dict[str, Any]:
        before, after = tiers.update_tier(conn, tier, changes)
        record_change(conn, actor=admin.actor, action="tier.updated", target=f"tier:{tier}",
                      before=before.as_dict(), after=after.as_dict(), ip=client.ip)
        return after.as_dict()
    return await ctx.db.run(change)


@router.put("/organizations/{org_id}/tier",
            summary="Set an organization's tier (an override), or clear it with null")
async def put_org_tier(org_id: str, body: OrgTierIn, ctx: Ctx, client: ClientInfo,
                       admin: AdminOperator) -> dict[str, Any]:
    def change(conn: sa.Connection) -> dict[str, Any]:
        before, after = tiers.set_override(conn, org_id, body.tier)
        record_change(conn, actor=admin.actor, action="organization.tier_set",
                      target=f"org:{org_id}", before=before, after=after, ip=client.ip,
                      organization_id=org_id)
        return after
    return await ctx.db.run(change)


@router.put("/keys/{key_id}/rate-limits",
            summary="Set an API key's own RPM and TPM (below its organization's tier)")
async def put_key_rates(key_id: str, body: KeyRatesIn, ctx: Ctx, client: ClientInfo,
                        admin: AdminOperator) -> dict[str, Any]:
    def change(conn: sa.Connection) -> dict[str, Any]:
        org, before, after = tiers.set_key_rate_limits(conn, key_id, body.rpm, body.tpm)
        record_change(conn, actor=admin.actor, action="api_key.rate_limits_set",
                      target=f"key:{key_id}", before=before, after=after, ip=client.ip,
                      organization_id=org)
        return {"id": key_id, **after}
    return await ctx.db.run(change)
