"""/api/orgs/{org_id}/usage/tier: the organization's usage tier and the RPM/TPM it allows, for
every member (docs/operators.md#usage-tiers-and-rate-limits)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter

from faregate.api.deps import Ctx, CurrentUser
from faregate.identity.access import require_member
from faregate.tiers import service as tiers

router = APIRouter()


@router.get("/orgs/{org_id}/usage/tier",
            summary="Your organization's usage tier and its rate limits (null: no limit)")
async def get_rate_limits(org_id: str, ctx: Ctx, user: CurrentUser) -> dict[str, Any]:
    def read(conn: sa.Connection) -> dict[str, Any]:
        require_member(conn, org_id, user.user_id)
        found = tiers.organization_tier(conn, org_id)
        upcoming = [t.as_dict() for t in tiers.list_tiers(conn)
                    if t.min_paid_nano is not None and t.tier > found["tier"]]
        return {"tier": found["tier"], "name": found["name"], "rpm": found["rpm"],
                "tpm": found["tpm"], "key_rpm": found["key_rpm"], "key_tpm": found["key_tpm"],
                "next_tiers": upcoming}
    return await ctx.db.run(read)
