"""Response bodies of the dashboard's usage endpoints. Every amount is given twice: as an exact
decimal USD string and as integer nano-USD (never a float)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

from faregate.kit.money import nano_to_usd
from faregate.usage.labels import Labels
from faregate.usage.live import LiveRecord
from faregate.usage.report import Bucket, Row, Sums


class SumsOut(BaseModel):
    requests: int
    failed_requests: int = Field(description="Requests whose status was not ok.")
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    cost_usd: str = Field(description="What the usage cost, exact decimal USD.")
    cost_nano_usd: int
    charged_usd: str = Field(description="What was debited from the balance.")
    charged_nano_usd: int
    writeoff_usd: str = Field(description="What the balance could not cover (cost - charged).")
    writeoff_nano_usd: int

    @classmethod
    def of(cls, s: Sums) -> SumsOut:
        return cls(requests=s.requests, failed_requests=s.failed_requests,
                   input_tokens=s.input_tokens, cached_tokens=s.cached_tokens,
                   output_tokens=s.output_tokens, cost_usd=nano_to_usd(s.cost_nano),
                   cost_nano_usd=s.cost_nano, charged_usd=nano_to_usd(s.charged_nano),
                   charged_nano_usd=s.charged_nano, writeoff_usd=nano_to_usd(s.writeoff_nano),
                   writeoff_nano_usd=s.writeoff_nano)


class GroupRowOut(SumsOut):
    group: dict[str, str | None] = Field(description=(
        "The grouped keys' values, e.g. {\"model\": \"gpt-4o-mini\"}; null for usage with no "
        "project or no key. Empty when not grouped."))

    @classmethod
    def of_row(cls, row: Row) -> GroupRowOut:
        return cls(group=row.group, **SumsOut.of(row.sums).model_dump())


class BucketOut(BaseModel):
    start: int = Field(description="POSIX seconds, UTC, inclusive.")
    end: int = Field(description="POSIX seconds, exclusive.")
    results: list[GroupRowOut] = Field(description="One per group with usage; empty if none.")


class KeyNameOut(BaseModel):
    name: str
    redacted: str


class ProjectNameOut(BaseModel):
    name: str


class NamesOut(BaseModel):
    """Display names of the keys and projects the answer mentions, by id."""

    api_keys: dict[str, KeyNameOut]
    projects: dict[str, ProjectNameOut]

    @classmethod
    def of(cls, labels: Labels) -> NamesOut:
        return cls(api_keys={i: KeyNameOut(name=k.name, redacted=k.redacted)
                             for i, k in labels.api_keys.items()},
                   projects={i: ProjectNameOut(name=n) for i, n in labels.projects.items()})


class SeriesOut(BaseModel):
    object: Literal["usage.series"] = "usage.series"
    start: int = Field(description="The range asked for, POSIX seconds (buckets are whole: "
                       "the first starts at or before it).")
    end: int
    width: str
    group_by: list[str]
    buckets: list[BucketOut]
    names: NamesOut


class SummaryOut(BaseModel):
    object: Literal["usage.summary"] = "usage.summary"
    start: int = Field(description="The range, POSIX seconds (rounded out to whole minutes).")
    end: int
    group_by: list[str]
    data: list[GroupRowOut] = Field(description="One row per group with usage in the range.")
    total: SumsOut = Field(description="The whole range, all groups.")
    names: NamesOut


def row_groups(buckets: list[Bucket] | None = None,
               rows: list[Row] | None = None) -> tuple[set[str], set[str]]:
    """The key ids and project ids mentioned by these buckets or rows."""
    every = [r for b in buckets or [] for r in b.rows] + list(rows or [])
    keys = {v for r in every if (v := r.group.get("api_key_id"))}
    projects = {v for r in every if (v := r.group.get("project_id"))}
    return keys, projects


class KeyRefOut(BaseModel):
    id: str
    name: str | None
    redacted: str | None


class ProjectRefOut(BaseModel):
    id: str
    name: str | None


class UsageEventOut(BaseModel):
    """One settled request, as the live view shows it. The live feed encodes the same fields
    from a plain dict (`usage_event`) with orjson; this model documents them (and is what
    `recent` returns)."""

    id: int = Field(description="The usage record's id (the SSE event id, and `after`).")
    request_id: str
    settled_at: dt.datetime
    model: str
    endpoint: str
    api_key: KeyRefOut | None
    project: ProjectRefOut | None
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    cost_usd: str
    cost_nano_usd: int
    charged_usd: str
    charged_nano_usd: int
    status: str = Field(description="ok, client_disconnected, upstream_error, ...")
    latency_ms: int
    streamed: bool

    @classmethod
    def of(cls, r: LiveRecord) -> UsageEventOut:
        return cls.model_validate(usage_event(r))


def usage_event(r: LiveRecord) -> dict[str, Any]:
    """A usage record as a UsageEventOut-shaped plain dict (for orjson, without pydantic)."""
    return {"id": r.id, "request_id": r.request_id, "settled_at": r.settled_at,
            "model": r.model, "endpoint": r.endpoint,
            "api_key": ({"id": r.api_key_id, "name": r.api_key_name,
                         "redacted": r.api_key_redacted} if r.api_key_id else None),
            "project": ({"id": r.project_id, "name": r.project_name}
                        if r.project_id else None),
            "input_tokens": r.input_tokens, "cached_tokens": r.cached_tokens,
            "output_tokens": r.output_tokens, "cost_usd": nano_to_usd(r.cost_nano),
            "cost_nano_usd": r.cost_nano, "charged_usd": nano_to_usd(r.charged_nano),
            "charged_nano_usd": r.charged_nano, "status": r.status,
            "latency_ms": r.latency_ms, "streamed": r.streamed}


class RecentOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[UsageEventOut] = Field(description="Oldest first.")
    has_more: bool = Field(description="With `after`: more records follow; ask again with "
                           "after=last_id.")
    last_id: int | None = Field(description="The cursor for the next call (`after`).")
