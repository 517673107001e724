"""/api endpoints: the organization's API keys (create, list, rename, change the spend limit,
revoke)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from types import EllipsisType
from typing import Literal

import sqlalchemy as sa
from fastapi import APIRouter, Response
from pydantic import BaseModel, Field, StrictFloat, StrictInt, StrictStr

from faregate.api.deps import ClientInfo, Ctx, CurrentUser
from faregate.api_keys import self_service
from faregate.api_keys.scopes import SCOPES
from faregate.api_keys.service import IssuedKey, KeyInfo, KeySpec
from faregate.errors import InvalidRequest
from faregate.kit.money import MoneyFormatError, nano_to_usd, usd_to_nano
from faregate.ledger.limits import key_limit_code, limit_use, window

router = APIRouter()


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["project", "admin"] = "project"
    project_id: str | None = None
    permissions: Literal["all", "restricted", "read_only"] = "all"
    scopes: list[str] = Field(default_factory=list,
                              description="For restricted keys: " + ", ".join(SCOPES))
    expires_at: dt.datetime | None = Field(None, description="When the key stops working.")
    expires_in_days: int | None = Field(None, ge=1, le=3650)
    spend_limit_usd: str | None = Field(None, description='A decimal string, e.g. "10.00".')
    spend_limit_period: Literal["day", "week", "month"] | None = None


class KeyUpdate(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    spend_limit_usd: StrictStr | StrictInt | StrictFloat | None = Field(
        None, description='The new limit, a decimal string ("10.00") or a JSON number; null '
        "removes the limit. Without spend_limit_period the key's period is kept.")
    spend_limit_period: Literal["day", "week", "month"] | None = Field(
        None, description="Alone, changes the period and keeps the amount. Counting starts "
        "afresh in the new period's account.")


class SpendLimitOut(BaseModel):
    amount_usd: str
    amount_nano_usd: int
    period: str
    period_start: dt.datetime
    period_end: dt.datetime
    spent_usd: str
    spent_nano_usd: int


class KeyOut(BaseModel):
    id: str
    object: Literal["api_key"] = "api_key"
    name: str
    redacted_value: str
    kind: str
    project_id: str | None
    permissions: str
    scopes: list[str]
    created_at: dt.datetime
    created_by: str | None
    last_used_at: dt.datetime | None
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    status: Literal["active", "expired", "revoked"]
    spend_limit: SpendLimitOut | None


class KeyCreated(KeyOut):
    key: str = Field(description="The full key. Shown this once; Faregate keeps only a hash.")


class KeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[KeyOut]


def _spec(body: KeyCreate) -> KeySpec:
    expires_at = body.expires_at
    if body.expires_in_days is not None:
        if expires_at is not None:
            raise InvalidRequest("Give expires_at or expires_in_days, not both.",
                                 param="expires_in_days")
        expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(days=body.expires_in_days)
    if expires_at is not None and expires_at.tzinfo is None:
        raise InvalidRequest("expires_at needs a time zone (e.g. 2027-01-01T00:00:00Z).",
                             param="expires_at")
    limit = None
    if body.spend_limit_usd is not None:
        try:
            limit = usd_to_nano(body.spend_limit_usd)
        except MoneyFormatError as exc:
            raise InvalidRequest(f"spend_limit_usd: {exc}", param="spend_limit_usd") from None
    return KeySpec(name=body.name, kind=body.kind, project_id=body.project_id,
                   permissions=body.permissions, scopes=tuple(body.scopes),
                   expires_at=expires_at, spend_limit_nano=limit,
                   spend_limit_period=body.spend_limit_period)


def _limit_nano(value: str | int | float) -> int:
    """A limit in USD as nano-USD, exactly. A JSON number arrives as a double: it is taken as
    written when it has at most 15 significant digits (a double keeps that many exactly)."""
    if isinstance(value, float):
        written = Decimal(repr(value))
        if not written.is_finite() or len(written.as_tuple().digits) > 15:
            raise InvalidRequest('Send an amount with more than 15 digits as a string, e.g. '
                                 '"1234.567891234".', param="spend_limit_usd")
    try:
        return usd_to_nano(repr(value) if isinstance(value, float) else str(value))
    except MoneyFormatError as exc:
        raise InvalidRequest(f"spend_limit_usd: {exc}", param="spend_limit_usd") from None


def _out(conn: sa.Connection, info: KeyInfo) -> dict[str, object]:
    now = dt.datetime.now(dt.UTC)
    status = ("revoked" if info.revoked_at is not None else
              "expired" if info.expires_at is not None and info.expires_at <= now else "active")
    limit = None
    if info.spend_limit_nano is not None and info.spend_limit_period in ("day", "week", "month"):
        w = window(info.spend_limit_period)  # type: ignore[arg-type]
        use = limit_use(conn, key_limit_code(info.id, w))
        spent = use.spent_nano if use else 0
        limit = {"amount_usd": nano_to_usd(info.spend_limit_nano),
                 "amount_nano_usd": info.spend_limit_nano, "period": w.period,
                 "period_start": w.start, "period_end": w.end, "spent_usd": nano_to_usd(spent),
                 "spent_nano_usd": spent}
    return {"id": info.id, "name": info.name, "redacted_value": info.redacted,
            "kind": info.kind, "project_id": info.project_id, "permissions": info.permissions,
            "scopes": list(info.scopes), "created_at": info.created_at,
            "created_by": info.created_by, "last_used_at": info.last_used_at,
            "expires_at": info.expires_at, "revoked_at": info.revoked_at, "status": status,
            "spend_limit": limit}


@router.get("/orgs/{org_id}/keys", response_model=KeyList,
            summary="List the organization's API keys (redacted)")
async def list_keys(org_id: str, user: CurrentUser, ctx: Ctx,
                    project_id: str | None = None) -> dict[str, object]:
    def run(conn: sa.Connection) -> list[dict[str, object]]:
        keys = self_service.user_list_keys(conn, user_id=user.user_id, organization_id=org_id,
                                           project_id=project_id)
        return [_out(conn, k) for k in keys]
    return {"object": "list", "data": await ctx.db.run(run)}


@router.post("/orgs/{org_id}/keys", response_model=KeyCreated, status_code=201,
             summary="Create an API key (the full key is in this response only)")
async def create_key(org_id: str, body: KeyCreate, user: CurrentUser, ctx: Ctx,
                     client: ClientInfo, response: Response) -> dict[str, object]:
    spec = _spec(body)

    def run(conn: sa.Connection) -> dict[str, object]:
        issued: IssuedKey = self_service.create_user_key(
            conn, user_id=user.user_id, organization_id=org_id, spec=spec, pepper=ctx.pepper,
            require_phone=ctx.settings.require_phone_for_keys, ip=client.ip)
        info = self_service.user_get_key(conn, user_id=user.user_id, organization_id=org_id,
                                         key_id=issued.id)
        return {**_out(conn, info), "key": issued.key}
    response.headers["cache-control"] = "no-store"
    return await ctx.db.run(run)


@router.get("/orgs/{org_id}/keys/{key_id}", response_model=KeyOut, summary="One API key")
async def get_key(org_id: str, key_id: str, user: CurrentUser, ctx: Ctx) -> dict[str, object]:
    def run(conn: sa.Connection) -> dict[str, object]:
        return _out(conn, self_service.user_get_key(conn, user_id=user.user_id,
                                                    organization_id=org_id, key_id=key_id))
    return await ctx.db.run(run)


@router.patch("/orgs/{org_id}/keys/{key_id}", response_model=KeyOut,
              summary="Rename a key or change its spend limit",
              description="Owners change any key of the organization, a member the keys they "
              "created. A new limit holds on /v1 within 2 seconds; a lowered one stops "
              "requests at exactly the new amount (requests already running finish).")
async def update_key(org_id: str, key_id: str, body: KeyUpdate, user: CurrentUser, ctx: Ctx,
                     client: ClientInfo) -> dict[str, object]:
    sent = body.model_fields_set
    if not sent & {"name", "spend_limit_usd", "spend_limit_period"}:
        raise InvalidRequest("Nothing to change: send name, spend_limit_usd or "
                             "spend_limit_period.")
    if "name" in sent and body.name is None:
        raise InvalidRequest("A key needs a name.", param="name")
    limit: int | EllipsisType | None = ...
    if "spend_limit_usd" in sent:
        limit = None if body.spend_limit_usd is None else _limit_nano(body.spend_limit_usd)
    period = body.spend_limit_period if "spend_limit_period" in sent else ...

    def run(conn: sa.Connection) -> dict[str, object]:
        info = None
        if body.name is not None:
            info = self_service.user_rename_key(conn, user_id=user.user_id,
                                                organization_id=org_id, key_id=key_id,
                                                name=body.name)
        if not isinstance(limit, EllipsisType) or not isinstance(period, EllipsisType):
            info = self_service.user_set_spend_limit(
                conn, user_id=user.user_id, organization_id=org_id, key_id=key_id,
                limit_nano=limit, period=period, ip=client.ip)
        assert info is not None
        return _out(conn, info)
    return await ctx.db.run(run)


@router.delete("/orgs/{org_id}/keys/{key_id}", response_model=KeyOut,
               summary="Revoke a key (every server refuses it within 2 seconds)")
async def revoke_key(org_id: str, key_id: str, user: CurrentUser, ctx: Ctx,
                     client: ClientInfo) -> dict[str, object]:
    def run(conn: sa.Connection) -> dict[str, object]:
        return _out(conn, self_service.user_revoke_key(
            conn, user_id=user.user_id, organization_id=org_id, key_id=key_id, ip=client.ip))
    return await ctx.db.run(run)


@router.get("/key-scopes", summary="The scopes a restricted key can be given")
async def key_scopes() -> dict[str, str]:
    return SCOPES
