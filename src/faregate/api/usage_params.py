"""The query parameters of the dashboard's usage endpoints: a time range, a bucket width,
grouping and filters, checked with readable errors."""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass
from typing import Annotated, Literal, get_args

from fastapi import Depends, Query

from faregate.errors import InvalidRequest
from faregate.usage.report import Filters, GroupKey

Width = Literal["1m", "1h", "1d"]
GROUP_KEYS: tuple[GroupKey, ...] = get_args(GroupKey)
WIDTHS: tuple[Width, ...] = get_args(Width)
WIDTH_S: dict[str, int] = {"1m": 60, "1h": 3600, "1d": 86400}
DAY_S = 86400
# The longest range per width (the number of buckets a chart gets is bounded by these), and the
# default range when none is given: the last hour, day or 30 days, up to the current bucket.
MAX_SPAN_S: dict[str, int] = {"1m": DAY_S, "1h": 14 * DAY_S, "1d": 400 * DAY_S}
DEFAULT_SPAN_S: dict[str, int] = {"1m": 3600, "1h": DAY_S, "1d": 30 * DAY_S}
MAX_FILTER_VALUES = 100
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_POSIX = re.compile(r"\d{1,12}")
_LIMIT_TEXT = {"1m": "1 day", "1h": "14 days", "1d": "400 days"}


@dataclass(frozen=True, slots=True)
class Range:
    start: int  # POSIX seconds, inclusive
    end: int  # exclusive


@dataclass(frozen=True, slots=True)
class Selection:
    """What to report: the grouping and the filters (the range depends on the width)."""

    start: str | None
    end: str | None
    group_by: tuple[GroupKey, ...]
    filters: Filters

    def range(self, width: Width, now: float | None = None) -> Range:
        return time_range(self.start, self.end, width, time.time() if now is None else now)


def parse_time(text: str, *, param: str, end: bool) -> int:
    """POSIX seconds from a date (YYYY-MM-DD: the whole UTC day, so as an end it means the next
    midnight), an ISO 8601 time with a zone, or POSIX seconds."""
    text = text.strip()
    try:
        if _DATE.fullmatch(text):
            day = dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.UTC)
            return int(day.timestamp()) + (DAY_S if end else 0)
        if _POSIX.fullmatch(text):
            return int(text)
        moment = dt.datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        moment = None
    if moment is None or moment.tzinfo is None:
        zone = " with a time zone" if moment is not None else ""
        raise InvalidRequest(
            f"{param}: expected a date (YYYY-MM-DD), an ISO 8601 time{zone} (e.g. "
            f"2026-11-01T00:00:00Z) or POSIX seconds; got {text[:40]!r}.", param=param)
    return int(moment.timestamp())


def time_range(start: str | None, end: str | None, width: Width, now: float) -> Range:
    """The range asked for; by default the last hour / day / 30 days (by width) up to the end
    of the current bucket. Refuses a range longer than the width allows."""
    seconds = WIDTH_S[width]
    stop = (parse_time(end, param="end", end=True) if end is not None
            else (int(now) // seconds + 1) * seconds)
    first = (parse_time(start, param="start", end=False) if start is not None
             else stop - DEFAULT_SPAN_S[width])
    if first >= stop:
        raise InvalidRequest("start must be before end (a date as end includes that day).",
                             param="start")
    if stop - first > MAX_SPAN_S[width]:
        raise InvalidRequest(
            f"The range is too long for width={width}: at most {_LIMIT_TEXT[width]} (asked "
            f"for {(stop - first) / DAY_S:.1f} days). Choose a wider bucket or a shorter "
            "range.", param="start")
    return Range(first, stop)


def _values(values: list[str], param: str) -> tuple[str, ...]:
    """Repeated parameters, each possibly comma-separated."""
    out = tuple(dict.fromkeys(v.strip() for value in values for v in value.split(",")))
    if len(out) > MAX_FILTER_VALUES:
        raise InvalidRequest(f"{param}: at most {MAX_FILTER_VALUES} values.", param=param)
    return out


def _group_by(values: list[str]) -> tuple[GroupKey, ...]:
    keys = tuple(v for v in _values(values, "group_by") if v)
    unknown = [k for k in keys if k not in GROUP_KEYS]
    if unknown:
        raise InvalidRequest(f"group_by: cannot group by {unknown[0]!r}; choose from "
                             f"{', '.join(GROUP_KEYS)}.", param="group_by")
    return tuple(k for k in keys if k in GROUP_KEYS)


_NONE = "An empty value selects usage with none."


def selection(
    start: Annotated[str | None, Query(description=(
        "Start of the range: YYYY-MM-DD (UTC midnight), an ISO 8601 time with a zone, or POSIX "
        "seconds. Default: the default range's start (see `width`)."))] = None,
    end: Annotated[str | None, Query(description=(
        "End of the range, exclusive: a date means the end of that UTC day (so "
        "start=2026-11-01&end=2026-11-30 is all of November), or an ISO 8601 time or POSIX "
        "seconds. Default: the end of the current bucket."))] = None,
    group_by: Annotated[list[str], Query(description=(
        "Group by any of project_id, api_key_id, model, endpoint (repeat the parameter or "
        "separate with commas)."))] = [],  # noqa: B006 - FastAPI copies defaults
    project_id: Annotated[list[str], Query(description="Only these projects. " + _NONE)] = [],  # noqa: B006
    api_key_id: Annotated[list[str], Query(description="Only these keys. " + _NONE)] = [],  # noqa: B006
    model: Annotated[list[str], Query(description="Only these models.")] = [],  # noqa: B006
    endpoint: Annotated[list[str], Query(description=(
        "Only these endpoints (chat, completions, embeddings, responses)."))] = [],  # noqa: B006
) -> Selection:
    return Selection(start, end, _group_by(group_by), Filters(
        project_ids=_values(project_id, "project_id"),
        api_key_ids=_values(api_key_id, "api_key_id"), models=_values(model, "model"),
        endpoints=_values(endpoint, "endpoint")))


UsageSelection = Annotated[Selection, Depends(selection)]
