"""/admin/api/models and /admin/api/price-groups: the model catalog and its prices. Any operator
reads; admins change (each change is audited with before/after and reaches running servers
within about a second; a request already running keeps the price it started with)."""

from __future__ import annotations

import functools

import sqlalchemy as sa
from fastapi import APIRouter, Response, status

from faregate.api.admin_deps import AdminOperator, CurrentOperator
from faregate.api.admin_model_schemas import (
    AliasIn,
    ModelCreateIn,
    ModelListOut,
    ModelOut,
    ModelPatchIn,
    MultiplierIn,
    OrgPriceGroupOut,
    PriceGroupIn,
    PriceGroupListOut,
    PriceGroupOut,
)
from faregate.api.deps import ClientInfo, Ctx
from faregate.catalog import model_admin
from faregate.catalog.service import DEFAULT_MAX_OUTPUT_TOKENS, DEFAULT_MAX_TOKENS, ModelPrice
from faregate.errors import InvalidRequest, NotFound
from faregate.kit.money import MoneyFormatError, usd_to_nano
from faregate.pricing.groups import text_to_ppm

router = APIRouter()


def _nano(text: str, param: str) -> int:
    try:
        nano = usd_to_nano(text)
    except MoneyFormatError as exc:
        raise InvalidRequest(f"{param}: {exc}", param=param) from None
    if nano < 0:
        raise InvalidRequest(f"{param}: a price cannot be negative", param=param)
    return nano


def _ppm(text: str) -> int:
    try:
        return text_to_ppm(text)
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="multiplier") from None


def _one(conn: sa.Connection, model_id: str) -> ModelOut:
    return ModelOut.of(model_admin.model_details(conn, model_id),
                       model_admin.list_price_groups(conn))


@router.get("/models", summary="List models with prices (list and per price group), aliases, "
            "visibility and minimum tier")
async def list_models(ctx: Ctx, operator: CurrentOperator) -> ModelListOut:
    def run(conn: sa.Connection) -> ModelListOut:
        groups = model_admin.list_price_groups(conn)
        return ModelListOut(data=[ModelOut.of(d, groups)
                                  for d in model_admin.list_model_details(conn)])
    return await ctx.db.run(run)


@router.get("/models/{model_id}", summary="One model")
async def get_model(model_id: str, ctx: Ctx, operator: CurrentOperator) -> ModelOut:
    return await ctx.db.run(_one, model_id)


@router.post("/models", status_code=status.HTTP_201_CREATED,
             summary="Add a model (an upstream must route it before clients can call it)")
async def create_model(body: ModelCreateIn, ctx: Ctx, client: ClientInfo,
                       admin: AdminOperator) -> ModelOut:
    input_nano = _nano(body.input_usd_per_1m, "input_usd_per_1m")
    price = ModelPrice(
        input_nano,
        input_nano if body.cached_input_usd_per_1m is None else
        _nano(body.cached_input_usd_per_1m, "cached_input_usd_per_1m"),
        _nano(body.output_usd_per_1m, "output_usd_per_1m"))
    max_out = body.max_output_tokens or max(DEFAULT_MAX_OUTPUT_TOKENS,
                                            body.default_max_tokens or 0)
    default = body.default_max_tokens or min(DEFAULT_MAX_TOKENS, max_out)

    def run(conn: sa.Connection) -> ModelOut:
        model_admin.create_model(
            conn, model_id=body.id, kind=body.kind, price=price, default_max_tokens=default,
            max_output_tokens=max_out, visibility=body.visibility,
            context_window=body.context_window, min_tier=body.min_tier,
            owned_by=body.owned_by, actor=admin.actor, ip=client.ip)
        return _one(conn, body.id)
    return await ctx.db.run(run)


@router.patch("/models/{model_id}", summary="Change a model's prices, limits, visibility, "
              "context window, minimum tier, owner or enabled state")
async def patch_model(model_id: str, body: ModelPatchIn, ctx: Ctx, client: ClientInfo,
                      admin: AdminOperator) -> ModelOut:
    change = model_admin.ModelChange(
        input_nano_per_1m=None if body.input_usd_per_1m is None else
        _nano(body.input_usd_per_1m, "input_usd_per_1m"),
        cached_input_nano_per_1m=None if body.cached_input_usd_per_1m is None else
        _nano(body.cached_input_usd_per_1m, "cached_input_usd_per_1m"),
        output_nano_per_1m=None if body.output_usd_per_1m is None else
        _nano(body.output_usd_per_1m, "output_usd_per_1m"),
        default_max_tokens=body.default_max_tokens, max_output_tokens=body.max_output_tokens,
        visibility=body.visibility, context_window=body.context_window or None,
        clear_context_window=body.context_window == 0, min_tier=body.min_tier,
        owned_by=body.owned_by, enabled=body.enabled)

    def run(conn: sa.Connection) -> ModelOut:
        model_admin.update_model(conn, model_id, change, actor=admin.actor, ip=client.ip)
        return _one(conn, model_id)
    return await ctx.db.run(run)


@router.post("/models/{model_id}/aliases", status_code=status.HTTP_201_CREATED,
             summary="Add another public name for the model (not a model id or another alias)")
async def add_alias(model_id: str, body: AliasIn, ctx: Ctx, client: ClientInfo,
                    admin: AdminOperator) -> ModelOut:
    def run(conn: sa.Connection) -> ModelOut:
        model_admin.add_alias(conn, body.alias, model_id, actor=admin.actor, ip=client.ip)
        return _one(conn, model_id)
    return await ctx.db.run(run)


@router.delete("/models/{model_id}/aliases/{alias}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Remove an alias")
async def remove_alias(model_id: str, alias: str, ctx: Ctx, client: ClientInfo,
                       admin: AdminOperator) -> Response:
    def run(conn: sa.Connection) -> None:
        if alias not in model_admin.aliases_of(conn).get(model_id, []):
            raise NotFound(f"model {model_id!r} has no alias {alias!r}")
        model_admin.remove_alias(conn, alias, actor=admin.actor, ip=client.ip)
    await ctx.db.run(run)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/models/{model_id}/multipliers/{group}",
            summary="Set the model's own price multiplier for a price group (it wins over the "
            "group's)")
async def set_multiplier(model_id: str, group: str, body: MultiplierIn, ctx: Ctx,
                         client: ClientInfo, admin: AdminOperator) -> ModelOut:
    ppm = _ppm(body.multiplier)

    def run(conn: sa.Connection) -> ModelOut:
        model_admin.set_model_multiplier(conn, model_id, group, ppm, actor=admin.actor,
                                         ip=client.ip)
        return _one(conn, model_id)
    return await ctx.db.run(run)


@router.delete("/models/{model_id}/multipliers/{group}",
               summary="Clear the model's own multiplier for a group (the group's applies)")
async def clear_multiplier(model_id: str, group: str, ctx: Ctx, client: ClientInfo,
                           admin: AdminOperator) -> ModelOut:
    def run(conn: sa.Connection) -> ModelOut:
        model_admin.set_model_multiplier(conn, model_id, group, None, actor=admin.actor,
                                         ip=client.ip)
        return _one(conn, model_id)
    return await ctx.db.run(run)


@router.get("/price-groups", summary="List price groups and their multipliers")
async def list_price_groups(ctx: Ctx, operator: CurrentOperator) -> PriceGroupListOut:
    found = await ctx.db.run(model_admin.list_price_groups)
    return PriceGroupListOut(data=[PriceGroupOut.of(g) for g in found])


@router.put("/price-groups/{group}", summary="Create a price group or change its multiplier")
async def put_price_group(group: str, body: PriceGroupIn, ctx: Ctx, client: ClientInfo,
                          admin: AdminOperator) -> PriceGroupOut:
    ppm = _ppm(body.multiplier)
    done = await ctx.db.run(functools.partial(
        model_admin.set_price_group, name=group, multiplier_ppm=ppm,
        description=body.description, actor=admin.actor, ip=client.ip))
    return PriceGroupOut.of(done)


@router.put("/price-groups/{group}/organizations/{org_id}",
            summary="Put an organization in a price group (\"default\": the default group)")
async def put_org_price_group(group: str, org_id: str, ctx: Ctx, client: ClientInfo,
                              admin: AdminOperator) -> OrgPriceGroupOut:
    done = await ctx.db.run(functools.partial(
        model_admin.set_org_price_group, organization_id=org_id, group=group,
        actor=admin.actor, ip=client.ip))
    return OrgPriceGroupOut(organization_id=org_id, price_group=done)
