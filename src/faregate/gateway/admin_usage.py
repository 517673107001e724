"""OpenAI's organization usage and costs APIs, for admin keys:

    GET /v1/organization/usage/completions   (chat, completions and responses)
    GET /v1/organization/usage/embeddings
    GET /v1/organization/costs               (daily; what the organization was charged)

Answers come from the usage rollups (faregate.usage.report), in OpenAI's page / bucket /
result shapes. Buckets are aligned to their width in UTC (the first one starts at `start_time`
rounded down), every bucket is present, and `page` is an opaque cursor to the next bucket.
Amounts are rendered from the exact integer sum of nano-USD as a decimal JSON number; no float
is ever summed."""

from __future__ import annotations

import base64
import binascii
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import parse_qsl

import orjson
import sqlalchemy as sa

from faregate.errors import AuthenticationFailed, FaregateError, InvalidRequest, NotFound
from faregate.gateway.asgi_io import Scope, Send, header, send_json
from faregate.gateway.state import GatewayState
from faregate.kit.money import nano_to_usd
from faregate.kit.netinfo import client_ip
from faregate.usage.report import Bucket, Filters, GroupKey, Row, buckets
from faregate.usage.rollup import WIDTHS

Kind = Literal["completions", "embeddings", "costs"]
ROUTES: dict[str, Kind] = {"/v1/organization/usage/completions": "completions",
                           "/v1/organization/usage/embeddings": "embeddings",
                           "/v1/organization/costs": "costs"}
PREFIX = "/v1/organization/"

ENDPOINTS: dict[Kind, tuple[str, ...]] = {
    "completions": ("chat", "completions", "responses"), "embeddings": ("embeddings",),
    "costs": ()}
# group_by values OpenAI accepts, and the rollup key each maps to (None: we cannot group by
# it, so the field is null, or a constant where we know it: no usage here is batch).
GROUPS: dict[Kind, dict[str, GroupKey | None]] = {
    "completions": {"project_id": "project_id", "api_key_id": "api_key_id", "model": "model",
                    "user_id": None, "batch": None, "service_tier": None, "api_source": None},
    "embeddings": {"project_id": "project_id", "api_key_id": "api_key_id", "model": "model",
                   "user_id": None},
    "costs": {"project_id": "project_id", "api_key_id": "api_key_id", "line_item": "model",
              "user_id": None, "api_source": None},
}
# (default, max) buckets per page, by width
LIMITS: dict[Kind, dict[str, tuple[int, int]]] = {
    "completions": {"1d": (7, 31), "1h": (24, 168), "1m": (60, 1440)},
    "embeddings": {"1d": (7, 31), "1h": (24, 168), "1m": (60, 1440)},
    "costs": {"1d": (7, 180)},
}
LIST_PARAMS = ("group_by", "project_ids", "api_key_ids", "models", "line_items", "user_ids")
MAX_LIST_VALUES = 500
MAX_TIME = 2**40  # Unix seconds; far beyond any real date, well inside 64 bits
_CURSOR = struct.Struct(">q")


class MethodNotAllowed(FaregateError):
    status = 405
    type = "invalid_request_error"


@dataclass(frozen=True, slots=True)
class Query:
    kind: Kind
    start: int  # where this page starts (start_time, or the cursor's bucket)
    end: int
    width: Literal["1m", "1h", "1d"]
    limit: int
    group_by: tuple[str, ...]  # OpenAI's names, as asked
    filters: Filters
    batch_only: bool = False


def _cursor(start: int) -> str:
    return "page_" + base64.urlsafe_b64encode(_CURSOR.pack(start)).decode()


def _from_cursor(page: str) -> int | None:
    if not page.startswith("page_"):
        return None
    try:
        raw = base64.urlsafe_b64decode(page[5:].encode())
    except (binascii.Error, ValueError):
        return None
    return _CURSOR.unpack(raw)[0] if len(raw) == _CURSOR.size else None


def _params(query_string: bytes) -> dict[str, list[str]]:
    """Query parameters by name; arrays come repeated (`a=1&a=2`) or, as the official SDKs
    send them, with brackets (`a[]=1&a[]=2`, also `a[0]=1`)."""
    out: dict[str, list[str]] = {}
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True,
                                 max_num_fields=4 * MAX_LIST_VALUES):
        if name.endswith("]") and "[" in name:
            name = name[:name.index("[")]
        out.setdefault(name, []).append(value)
    return out


def _one(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequest(f"Invalid value for '{name}': expected one value.", param=name)
    return values[0]


def _time(params: dict[str, list[str]], name: str) -> int | None:
    text = _one(params, name)
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < MAX_TIME:
        raise InvalidRequest(f"Invalid value for '{name}': expected Unix seconds (an integer "
                             f"from 0), got {text[:40]!r}.", param=name)
    return value


def _list(params: dict[str, list[str]], name: str) -> tuple[str, ...]:
    values = tuple(v for v in params.get(name, ()) if v)
    if len(values) > MAX_LIST_VALUES:
        raise InvalidRequest(f"Too many values for '{name}': at most {MAX_LIST_VALUES}.",
                             param=name)
    return tuple(dict.fromkeys(values))


def parse_query(kind: Kind, query_string: bytes, now: int) -> Query:
    """The request's parameters, checked; 400 naming the parameter when one is wrong."""
    params = _params(query_string)
    start = _time(params, "start_time")
    if start is None:
        raise InvalidRequest("Missing required parameter: 'start_time'.", param="start_time",
                             code="missing_required_parameter")
    end = _time(params, "end_time")
    if end is None:
        end = max(now, start + 1)
    if end <= start:
        raise InvalidRequest("Invalid value for 'end_time': it must be after 'start_time'.",
                             param="end_time")
    widths = LIMITS[kind]
    width = _one(params, "bucket_width") or "1d"
    if width not in widths:
        raise InvalidRequest(f"Invalid value for 'bucket_width': {width[:20]!r}. Supported "
                             f"values are: {', '.join(map(repr, widths))}.", param="bucket_width")
    default, most = widths[width]
    limit_text = _one(params, "limit")
    try:
        limit = default if limit_text is None else int(limit_text)
    except ValueError:
        limit = 0
    if not 1 <= limit <= most:
        raise InvalidRequest(f"Invalid value for 'limit': with bucket_width={width} it must be "
                             f"an integer from 1 to {most}.", param="limit")
    groups = GROUPS[kind]
    group_by = _list(params, "group_by")
    for g in group_by:
        if g not in groups:
            raise InvalidRequest(f"Invalid value for 'group_by': {g[:40]!r}. Supported values "
                                 f"are: {', '.join(map(repr, groups))}.", param="group_by")
    if _list(params, "user_ids"):
        raise InvalidRequest("Filtering by 'user_ids' is not supported; filter by "
                             "'api_key_ids' (every key belongs to one user).", param="user_ids")
    models = _list(params, "line_items" if kind == "costs" else "models")
    batch = _one(params, "batch") if kind == "completions" else None
    if batch not in (None, "true", "false"):
        raise InvalidRequest("Invalid value for 'batch': expected true or false.", param="batch")
    page = _one(params, "page")
    if page is not None:
        at = _from_cursor(page)
        if at is None or not start - start % WIDTHS[width] <= at < end or at % WIDTHS[width]:
            raise InvalidRequest("Invalid value for 'page': use the 'next_page' of the previous "
                                 "response, with the same parameters.", param="page")
        start = at
    filters = Filters(project_ids=_list(params, "project_ids"),
                      api_key_ids=_list(params, "api_key_ids"), models=models,
                      endpoints=ENDPOINTS[kind])
    return Query(kind, start, end, cast(Literal["1m", "1h", "1d"], width), limit, group_by,
                 filters, batch_only=batch == "true")


def _group_fields(q: Query, row: Row, names: tuple[str, ...]) -> dict[str, Any]:
    mapping = GROUPS[q.kind]
    out: dict[str, Any] = {}
    for name in names:
        key = mapping.get(name) if name in q.group_by else None
        out[name] = row.group.get(key) if key is not None else None
    if "batch" in q.group_by:
        out["batch"] = False
    if "api_source" in q.group_by:
        out["api_source"] = "unlabeled"
    return out


def _completions_result(q: Query, row: Row) -> dict[str, Any]:
    s = row.sums
    return {"object": "organization.usage.completions.result",
            "input_tokens": s.input_tokens, "input_cached_tokens": s.cached_tokens,
            "input_uncached_tokens": s.input_tokens - s.cached_tokens,
            "output_tokens": s.output_tokens, "input_audio_tokens": 0,
            "output_audio_tokens": 0, "num_model_requests": s.requests,
            **_group_fields(q, row, ("project_id", "user_id", "api_key_id", "model", "batch",
                                     "service_tier"))}


def _embeddings_result(q: Query, row: Row) -> dict[str, Any]:
    return {"object": "organization.usage.embeddings.result",
            "input_tokens": row.sums.input_tokens, "num_model_requests": row.sums.requests,
            **_group_fields(q, row, ("project_id", "user_id", "api_key_id", "model"))}


def _costs_result(q: Query, row: Row) -> dict[str, Any]:
    # The exact decimal of the integer sum, written into the JSON as a number literal.
    value = orjson.Fragment(nano_to_usd(row.sums.charged_nano).encode())
    return {"object": "organization.costs.result",
            "amount": {"value": value, "currency": "usd"},
            **_group_fields(q, row, ("line_item", "project_id", "api_key_id")),
            "quantity": None, "quantity_unit": None}


RESULTS: dict[Kind, Callable[[Query, Row], dict[str, Any]]] = {
    "completions": _completions_result, "embeddings": _embeddings_result,
    "costs": _costs_result}


def answer(conn: sa.Connection, organization_id: str, q: Query) -> dict[str, Any]:
    """One page of OpenAI's UsageResponse for the organization."""
    mapping = GROUPS[q.kind]
    keys = [k for k in (mapping[g] for g in q.group_by) if k is not None]
    found: list[Bucket] = buckets(conn, organization_id, start=q.start, end=q.end,
                                  width=q.width, group_by=keys, filters=q.filters,
                                  limit=q.limit)
    to_result = RESULTS[q.kind]
    data = [{"object": "bucket", "start_time": b.start, "end_time": b.end,
             "results": [] if q.batch_only else [to_result(q, r) for r in b.rows]}
            for b in found]
    more = bool(found) and found[-1].end < q.end
    return {"object": "page", "data": data, "has_more": more,
            "next_page": _cursor(found[-1].end) if more else None}


async def serve_admin(gw: GatewayState, scope: Scope, send: Send,
                      headers: list[tuple[bytes, bytes]]) -> None:
    """Everything under /v1/organization/: admin keys only."""
    path: str = scope["path"].rstrip("/")
    method: str = scope["method"]
    kind = ROUTES.get(path)
    if kind is None:
        raise NotFound(f"Invalid URL ({method} {path})")
    if method != "GET":
        raise MethodNotAllowed(f"Method not allowed ({method} {path})")
    principal = await gw.auth.authenticate(header(scope, b"authorization"),
                                           client_ip(scope, gw.trusted_proxies))
    if principal.kind != "admin":
        raise AuthenticationFailed(
            "You have insufficient permissions for this operation. Missing scopes: "
            "api.usage.read. The organization's usage and costs are read with an admin key.",
            code=None)
    q = parse_query(kind, scope.get("query_string", b""), int(time.time()))
    page = await gw.db.run(answer, principal.organization_id, q)
    await send_json(send, 200, page, headers)
