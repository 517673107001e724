"""/admin/api users, organizations and the audit trail, read by any operator (support too):
search, an organization's or a user's overview, an organization's ledger, audit search."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Annotated

from fastapi import APIRouter, Query

from faregate.api.admin_console_schemas import (
    AuditEventOut,
    AuditSearchOut,
    EntryOut,
    LedgerPageOut,
    OrgHitOut,
    OrgOverviewOut,
    OrgSearchOut,
    UserHitOut,
    UserOverviewOut,
    UserSearchOut,
    utc,
)
from faregate.api.admin_deps import CurrentOperator
from faregate.api.deps import Ctx
from faregate.console import audit_search, search, views

router = APIRouter()

QueryText = Annotated[str, Query(max_length=320, description="A fragment of an email address "
                                 "or a name, or an exact id; empty: everyone.")]
Cursor = Annotated[str | None, Query(max_length=80, description="`next_cursor` of the page "
                                     "before.")]
Limit = Annotated[int, Query(ge=1, le=200)]


@router.get("/users", summary="Find users by email fragment or id")
async def search_users(ctx: Ctx, operator: CurrentOperator, query: QueryText = "",
                       cursor: Cursor = None, limit: Limit = 50) -> UserSearchOut:
    page = await ctx.db.run(functools.partial(search.search_users, query=query, limit=limit,
                                              cursor=cursor))
    return UserSearchOut(data=[UserHitOut.of(u) for u in page.data],
                         next_cursor=page.next_cursor)


@router.get("/users/{user_id}", summary="A user: profile, masked phone, organizations, "
            "deactivation, notes, audit trail")
async def get_user(user_id: str, ctx: Ctx, operator: CurrentOperator) -> UserOverviewOut:
    return UserOverviewOut.of(await ctx.db.run(views.user_overview, user_id))


@router.get("/organizations", summary="Find organizations by name, id or a member's email")
async def search_orgs(ctx: Ctx, operator: CurrentOperator, query: QueryText = "",
                      cursor: Cursor = None, limit: Limit = 50) -> OrgSearchOut:
    page = await ctx.db.run(functools.partial(search.search_orgs, query=query, limit=limit,
                                              cursor=cursor))
    return OrgSearchOut(data=[OrgHitOut.of(o) for o in page.data],
                        next_cursor=page.next_cursor)


@router.get("/organizations/{org_id}", summary="An organization's overview: balance, ledger, "
            "30-day usage, payment methods (brand/last 4), keys (redacted), risk decisions, "
            "members, notes, audit trail")
async def get_org(org_id: str, ctx: Ctx, operator: CurrentOperator) -> OrgOverviewOut:
    return OrgOverviewOut.of(await ctx.db.run(views.org_overview, org_id))


@router.get("/organizations/{org_id}/ledger", summary="An organization's ledger entries, "
            "newest first")
async def get_ledger(org_id: str, ctx: Ctx, operator: CurrentOperator, limit: Limit = 50,
                     before: Annotated[int | None, Query(ge=1, description="Only entries "
                                                         "older than this id.")] = None
                     ) -> LedgerPageOut:
    entries = await ctx.db.run(functools.partial(views.ledger_page, organization_id=org_id,
                                                 limit=limit + 1, before_id=before))
    page = entries[:limit]
    return LedgerPageOut(data=[EntryOut.of(e) for e in page],
                         next_before=page[-1].id if len(entries) > limit else None)


@router.get("/audit", summary="Search the audit trail (newest first): by actor, action "
            "(a trailing * matches a prefix), target, organization and time")
async def search_audit(
    ctx: Ctx, operator: CurrentOperator,
    actor: Annotated[str | None, Query(max_length=200, description="e.g. operator:op_…, "
                                       "cli:alice, user:user_…")] = None,
    action: Annotated[str | None, Query(max_length=64, description="e.g. credit.granted or "
                                        "credit.*")] = None,
    target: Annotated[str | None, Query(max_length=200, description="e.g. org:org_…, "
                                        "user:user_…")] = None,
    organization_id: Annotated[str | None, Query(max_length=40)] = None,
    since: Annotated[dt.datetime | None, Query(description="From this time (UTC).")] = None,
    until: Annotated[dt.datetime | None, Query(description="Before this time (UTC).")] = None,
    cursor: Annotated[int | None, Query(ge=1, description="`next_cursor` of the page "
                                        "before.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditSearchOut:
    query = audit_search.AuditQuery(actor=actor, action=action, target=target,
                                    organization_id=organization_id, since=utc(since),
                                    until=utc(until))
    page = await ctx.db.run(functools.partial(audit_search.search_events, query=query,
                                              limit=limit, before_id=cursor))
    return AuditSearchOut(data=[AuditEventOut.of(e) for e in page.data],
                          next_cursor=page.next_cursor)
