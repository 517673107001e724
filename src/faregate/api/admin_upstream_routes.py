"""/admin/api/upstreams: every upstream with its routing and its figures summed over the
server processes (requests, failures, error rate, mean latency to the response head,
failovers, breaker, health); admins add upstreams, change their routing, timeouts and
enablement, and map models to them. API keys go in, never out."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, Field, SecretStr

from faregate.api.admin_deps import AdminOperator, CurrentOperator, SecretCipher
from faregate.api.admin_schemas import Body
from faregate.api.deps import ClientInfo, Ctx
from faregate.catalog import upstream_admin
from faregate.catalog.service import UpstreamInfo
from faregate.catalog.upstream_admin import UpstreamChange, UpstreamFigures

router = APIRouter(prefix="/upstreams")

_PRIORITY_DOC = ("Lower numbers are tried first; upstreams of the same priority share the load "
                 "by weight.")
_WEIGHT_DOC = "The share of requests among upstreams of the same priority."


class UpstreamOut(BaseModel):
    id: int
    name: str
    base_url: str
    models: dict[str, str] = Field(description="Public model id -> the upstream's name for it.")
    api_key_env: str | None
    has_stored_key: bool
    enabled: bool
    priority: int
    weight: int
    connect_timeout_ms: int
    read_timeout_ms: int

    @classmethod
    def of(cls, u: UpstreamInfo) -> UpstreamOut:
        return cls(id=u.id, name=u.name, base_url=u.base_url, models=dict(u.models),
                   api_key_env=u.api_key_env, has_stored_key=u.has_stored_key,
                   enabled=u.enabled, priority=u.priority, weight=u.weight,
                   connect_timeout_ms=u.connect_timeout_ms, read_timeout_ms=u.read_timeout_ms)


class UpstreamFiguresOut(UpstreamOut):
    requests: int = Field(description="Calls sent, summed over the server processes since "
                          "each started.")
    failures: int = Field(description="Calls that failed: connect errors, timeouts, 5xx, 429, "
                          "answers that broke off.")
    error_rate: float | None
    mean_latency_ms: float | None = Field(description="Mean time to the response head.")
    failovers: int = Field(description="Requests moved on from this upstream to the next.")
    breaker: Literal["closed", "open", "half_open"] = Field(
        description="open when any live server process has its breaker open.")
    breaker_open_until: dt.datetime | None
    health: Literal["ok", "failing", "unknown"]
    health_checked_at: dt.datetime | None
    last_error: str | None
    last_error_at: dt.datetime | None
    instances: int = Field(description="Live server processes reporting figures.")

    @classmethod
    def of_figures(cls, f: UpstreamFigures) -> UpstreamFiguresOut:
        base = UpstreamOut.of(f.upstream).model_dump()
        return cls(**base, requests=f.requests, failures=f.failures, error_rate=f.error_rate,
                   mean_latency_ms=f.mean_latency_ms, failovers=f.failovers,
                   breaker=f.breaker, breaker_open_until=f.breaker_open_until,
                   health=f.health,
                   health_checked_at=f.health_checked_at, last_error=f.last_error,
                   last_error_at=f.last_error_at, instances=f.instances)


class UpstreamListOut(BaseModel):
    data: list[UpstreamFiguresOut]


class UpstreamCreateIn(Body):
    name: str = Field(min_length=1, max_length=120)
    base_url: str = Field(max_length=1000, description="OpenAI-compatible base URL, e.g. "
                          "https://api.example.com/v1.")
    models: dict[str, str] = Field(min_length=1, description="Public model id -> the "
                                   "upstream's name for it; models are created (price 0) if "
                                   "new.")
    api_key: SecretStr | None = Field(default=None, description="Stored encrypted; never "
                                      "shown again.")
    api_key_env: str | None = Field(default=None, max_length=200, description="Or: the "
                                    "environment variable holding the key at run time.")
    priority: int = Field(default=0, ge=0, le=upstream_admin.MAX_PRIORITY,
                          description=_PRIORITY_DOC)
    weight: int = Field(default=1, ge=1, le=upstream_admin.MAX_WEIGHT, description=_WEIGHT_DOC)
    connect_timeout_ms: int = Field(default=10_000, ge=1, le=3_600_000)
    read_timeout_ms: int = Field(default=600_000, ge=1, le=86_400_000)
    kind: Literal["chat", "embedding"] = "chat"


class UpstreamPatchIn(Body):
    priority: int | None = Field(default=None, ge=0, le=upstream_admin.MAX_PRIORITY,
                                 description=_PRIORITY_DOC)
    weight: int | None = Field(default=None, ge=1, le=upstream_admin.MAX_WEIGHT,
                               description=_WEIGHT_DOC)
    enabled: bool | None = None
    connect_timeout_ms: int | None = Field(default=None, ge=1, le=3_600_000)
    read_timeout_ms: int | None = Field(default=None, ge=1, le=86_400_000)


class ModelMapIn(Body):
    model: str = Field(min_length=1, max_length=200, description="The public model id.")
    upstream_model: str | None = Field(default=None, max_length=200,
                                       description="The upstream's name for it (default: the "
                                       "same).")
    kind: Literal["chat", "embedding"] = Field(default="chat", description="When the model is "
                                               "new.")


def _live_window_s(ctx: Ctx) -> float:
    return max(3 * ctx.settings.upstream_stats_flush_s, 15.0)


@router.get("", summary="Upstreams with routing and figures (breaker, health, errors, "
            "latency, failovers)")
async def list_upstreams(ctx: Ctx, operator: CurrentOperator) -> UpstreamListOut:
    found = await ctx.db.run(upstream_admin.upstream_figures, _live_window_s(ctx))
    return UpstreamListOut(data=[UpstreamFiguresOut.of_figures(f) for f in found])


@router.post("", status_code=status.HTTP_201_CREATED, summary="Add an upstream (admins only)")
async def create_upstream(body: UpstreamCreateIn, ctx: Ctx, client: ClientInfo,
                          admin: AdminOperator, cipher: SecretCipher) -> UpstreamOut:
    made = await ctx.db.run(functools.partial(
        upstream_admin.create_upstream, name=body.name, base_url=body.base_url,
        model_map=body.models,
        api_key=body.api_key.get_secret_value() if body.api_key else None,
        api_key_env=body.api_key_env, cipher=cipher, actor=admin.actor,
        priority=body.priority, weight=body.weight,
        connect_timeout_ms=body.connect_timeout_ms, read_timeout_ms=body.read_timeout_ms,
        kind=body.kind, ip=client.ip))
    return UpstreamOut.of(made)


@router.patch("/{upstream_id}", summary="Change an upstream's priority, weight, timeouts or "
              "enablement (admins only)")
async def patch_upstream(upstream_id: int, body: UpstreamPatchIn, ctx: Ctx, client: ClientInfo,
                         admin: AdminOperator) -> UpstreamOut:
    change = UpstreamChange(priority=body.priority, weight=body.weight, enabled=body.enabled,
                            connect_timeout_ms=body.connect_timeout_ms,
                            read_timeout_ms=body.read_timeout_ms)
    found = await ctx.db.run(functools.partial(
        upstream_admin.change_upstream, upstream_id=upstream_id, change=change,
        actor=admin.actor, ip=client.ip))
    return UpstreamOut.of(found)


@router.post("/{upstream_id}/models", summary="Route a model to this upstream, or rename it "
             "there (admins only)")
async def map_model(upstream_id: int, body: ModelMapIn, ctx: Ctx, client: ClientInfo,
                    admin: AdminOperator) -> UpstreamOut:
    found = await ctx.db.run(functools.partial(
        upstream_admin.map_model, upstream_id=upstream_id, model_id=body.model,
        upstream_model=body.upstream_model, kind=body.kind, actor=admin.actor, ip=client.ip))
    return UpstreamOut.of(found)


@router.delete("/{upstream_id}/models/{model_id:path}",
               summary="Stop routing a model to this upstream (admins only)")
async def unmap_model(upstream_id: int, model_id: str, ctx: Ctx, client: ClientInfo,
                      admin: AdminOperator) -> UpstreamOut:
    found = await ctx.db.run(functools.partial(
        upstream_admin.unmap_model, upstream_id=upstream_id, model_id=model_id,
        actor=admin.actor, ip=client.ip))
    return UpstreamOut.of(found)
