"""/api/orgs/{org_id}/usage: the dashboard's usage endpoints, for every member of the
organization. Series, summary and CSV read the rollups (faregate.usage.report); the live feed
and `recent` read the newest usage records (faregate.usage.live). See docs/usage.md."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Header, Query
from starlette.requests import Request
from starlette.responses import StreamingResponse

from faregate.api import usage_export, usage_stream
from faregate.api.deps import Ctx, CurrentUser
from faregate.api.schemas_usage import (
    BucketOut,
    GroupRowOut,
    NamesOut,
    RecentOut,
    SeriesOut,
    SummaryOut,
    SumsOut,
    UsageEventOut,
    row_groups,
)
from faregate.api.security import SESSION_COOKIE
from faregate.api.usage_params import UsageSelection, Width
from faregate.errors import InvalidRequest
from faregate.identity.access import require_member
from faregate.usage import live, report
from faregate.usage.labels import Labels, labels
from faregate.usage.live import LiveRecord
from faregate.usage.report import Bucket, Row, Sums

router = APIRouter(prefix="/orgs/{org_id}/usage")

_WIDTH = Query(description="Bucket width: 1m (range up to 1 day, default the last hour), 1h "
               "(up to 14 days, default the last day), 1d (up to 400 days, default the last "
               "30 days).")
_SSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {"description": "A text/event-stream: `event: usage` events whose data is a "
          "UsageEventOut (JSON, see the schemas) and whose `id` is the usage record's id (no "
          "`id` for a record that showed up after a later one); `: keep-alive` comments every "
          "15 s; `event: end` with data `{\"reason\": ...}` (`signed_out_or_not_a_member`, "
          "`too_slow`) before the server ends it.", "content": {"text/event-stream": {}}},
    429: {"description": "Too many live streams open (5 per user per organization)."}}


def _labelled_buckets(conn: sa.Connection, org_id: str, user_id: str, sel: UsageSelection,
                      width: Width, start: int, end: int) -> tuple[list[Bucket], Labels]:
    require_member(conn, org_id, user_id)
    found = report.buckets(conn, org_id, start=start, end=end, width=width,
                           group_by=sel.group_by, filters=sel.filters)
    keys, projects = row_groups(buckets=found)
    return found, labels(conn, org_id, api_key_ids=keys, project_ids=projects)


@router.get("/series", summary="Usage per bucket (charts), grouped and filtered")
async def series(org_id: str, ctx: Ctx, user: CurrentUser, sel: UsageSelection,
                 width: Annotated[Width, _WIDTH] = "1d") -> SeriesOut:
    span = sel.range(width)

    def run(conn: sa.Connection) -> tuple[list[Bucket], Labels]:
        return _labelled_buckets(conn, org_id, user.user_id, sel, width, span.start, span.end)
    found, names = await ctx.db.run(run)
    return SeriesOut(start=span.start, end=span.end, width=width, group_by=list(sel.group_by),
                     buckets=[BucketOut(start=b.start, end=b.end,
                                        results=[GroupRowOut.of_row(r) for r in b.rows])
                              for b in found], names=NamesOut.of(names))


def _total(rows: list[Row]) -> Sums:
    return Sums(*(sum(getattr(r.sums, f.name) for r in rows) for f in dataclasses.fields(Sums)))


@router.get("/summary", summary="Usage over a range (the table), grouped, with the total")
async def summary(org_id: str, ctx: Ctx, user: CurrentUser, sel: UsageSelection) -> SummaryOut:
    span = sel.range("1d")

    def run(conn: sa.Connection) -> tuple[list[Row], Labels]:
        require_member(conn, org_id, user.user_id)
        rows = report.totals(conn, org_id, start=span.start, end=span.end,
                             group_by=sel.group_by, filters=sel.filters)
        keys, projects = row_groups(rows=rows)
        return rows, labels(conn, org_id, api_key_ids=keys, project_ids=projects)
    rows, names = await ctx.db.run(run)
    return SummaryOut(start=span.start, end=span.end, group_by=list(sel.group_by),
                      data=[GroupRowOut.of_row(r) for r in rows],
                      total=SumsOut.of(_total(rows)), names=NamesOut.of(names))


@router.get("/export.csv", summary="Usage per bucket x group as CSV (exact decimal USD)",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}},
                             "description": "An attachment: one line per bucket x group."}})
async def export_csv(org_id: str, ctx: Ctx, user: CurrentUser, sel: UsageSelection,
                     width: Annotated[Width, _WIDTH] = "1d") -> StreamingResponse:
    span = sel.range(width)

    def run(conn: sa.Connection) -> tuple[list[Bucket], Labels]:
        return _labelled_buckets(conn, org_id, user.user_id, sel, width, span.start, span.end)
    found, names = await ctx.db.run(run)
    name = f"usage-{org_id}-{span.start}-{span.end}-{width}.csv"
    return StreamingResponse(
        usage_export.lines(found, sel.group_by, names), media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"',
                 "cache-control": "no-store"})


@router.get("/recent", summary="The newest usage records (the live view, by polling)")
async def recent(org_id: str, ctx: Ctx, user: CurrentUser,
                 after: Annotated[int | None, Query(
                     ge=1, description="Only records after this one (the previous answer's "
                     "last_id), oldest first. Without it: the newest `limit`.")] = None,
                 limit: Annotated[int, Query(ge=1, le=200)] = 50) -> RecentOut:
    def run(conn: sa.Connection) -> tuple[list[LiveRecord], bool] | None:
        require_member(conn, org_id, user.user_id)
        if after is None:
            return live.newest(conn, org_id, limit), False
        return live.after(conn, org_id, after, limit)
    found = await ctx.db.run(run)
    if found is None:
        raise InvalidRequest(f"after: this organization has no usage record {after}.",
                             param="after")
    records, more = found
    last = records[-1].id if records else after
    return RecentOut(data=[UsageEventOut.of(r) for r in records], has_more=more, last_id=last)


@router.get("/live", summary="New usage as it settles (Server-Sent Events)",
            response_class=StreamingResponse, responses=_SSE_DOC)
async def live_feed(org_id: str, request: Request, ctx: Ctx, user: CurrentUser,
                    backlog: Annotated[int, Query(
                        ge=0, le=100, description="How many of the newest records to send "
                        "first (not when resuming).")] = 20,
                    last_event_id: Annotated[str | None, Header(
                        description="Set by EventSource when it reconnects: resume after "
                        "this record.")] = None) -> StreamingResponse:
    resume: int | None = None
    if last_event_id:
        if not last_event_id.strip().isdigit():
            raise InvalidRequest("Last-Event-ID: expected a usage record id.",
                                 param="Last-Event-ID")
        resume = int(last_event_id.strip())

    await ctx.db.run(require_member, org_id, user.user_id)
    return await usage_stream.open_stream(
        ctx, request.app.state, organization_id=org_id, user_id=user.user_id,
        session_token=request.cookies.get(SESSION_COOKIE, ""), resume_after=resume,
        backlog=backlog)
