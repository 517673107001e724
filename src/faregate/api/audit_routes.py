"""/api/orgs/{org_id}/audit: the organization's audit trail (owners)."""

from __future__ import annotations

import functools
from typing import Annotated

from fastapi import APIRouter, Query

from faregate.api.deps import Ctx, CurrentUser
from faregate.api.schemas_orgs import AuditEventOut, AuditPageOut
from faregate.identity import orgs

router = APIRouter()


@router.get("/orgs/{org_id}/audit", summary="Audit events, newest first (owner)")
async def list_events(org_id: str, ctx: Ctx, user: CurrentUser,
                      limit: Annotated[int, Query(ge=1, le=200)] = 50,
                      before: Annotated[int | None, Query(
                          ge=1, description="Only events older than this id (paging).")]
                      = None) -> AuditPageOut:
    page = await ctx.db.run(functools.partial(
        orgs.list_org_events, organization_id=org_id, user_id=user.user_id, limit=limit,
        before_id=before))
    return AuditPageOut(data=[AuditEventOut.of(e) for e in page.events],
                        has_more=page.has_more, next_before=page.next_before)
