"""Bodies of /admin/api/models and /admin/api/price-groups. Prices are decimal USD strings per
1M tokens going in ("2.5"); coming out, both that and the exact integer nano-USD. Multipliers
are decimal strings ("1.25") going in, both the string and integer parts per million out."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from faregate.catalog.model_admin import ModelDetails, PriceGroup
from faregate.kit.money import nano_to_usd
from faregate.pricing.cost import Price
from faregate.pricing.groups import group_price, ppm_to_text

_USD = Field(default=None, max_length=40, description="USD per 1M tokens, a decimal string.")
_TOKENS = Field(default=None, ge=1, le=10_000_000)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelCreateIn(Body):
    id: str = Field(max_length=200, description="The public model id clients send.")
    kind: Literal["chat", "embedding"] = "chat"
    input_usd_per_1m: str = Field(default="0", max_length=40)
    cached_input_usd_per_1m: str | None = Field(
        default=None, max_length=40, description="Default: the input price.")
    output_usd_per_1m: str = Field(default="0", max_length=40)
    default_max_tokens: int | None = _TOKENS
    max_output_tokens: int | None = _TOKENS
    visibility: Literal["public", "hidden"] = "public"
    context_window: int | None = _TOKENS
    min_tier: int = Field(default=0, ge=0, le=100, description="The lowest usage tier that "
                          "may use the model (100: only unlimited organizations).")
    owned_by: str = Field(default="faregate", max_length=120)


class ModelPatchIn(Body):
    input_usd_per_1m: str | None = _USD
    cached_input_usd_per_1m: str | None = _USD
    output_usd_per_1m: str | None = _USD
    default_max_tokens: int | None = _TOKENS
    max_output_tokens: int | None = _TOKENS
    visibility: Literal["public", "hidden"] | None = None
    context_window: int | None = Field(default=None, ge=0, le=10_000_000,
                                       description="Tokens; 0 removes the window.")
    min_tier: int | None = Field(default=None, ge=0, le=100)
    owned_by: str | None = Field(default=None, max_length=120)
    enabled: bool | None = None


class AliasIn(Body):
    alias: str = Field(max_length=200)


class MultiplierIn(Body):
    multiplier: str = Field(max_length=20, description='A decimal, e.g. "1.25" (x1.25).')


class PriceGroupIn(Body):
    multiplier: str = Field(max_length=20, description='A decimal, e.g. "0.8" (x0.8).')
    description: str | None = Field(default=None, max_length=300)


class PriceOut(BaseModel):
    input_usd_per_1m: str
    cached_input_usd_per_1m: str
    output_usd_per_1m: str
    input_nano_usd_per_1m: int
    cached_input_nano_usd_per_1m: int
    output_nano_usd_per_1m: int

    @classmethod
    def of(cls, p: Price) -> PriceOut:
        return cls(input_usd_per_1m=nano_to_usd(p.input_nano_per_1m),
                   cached_input_usd_per_1m=nano_to_usd(p.cached_input_nano_per_1m),
                   output_usd_per_1m=nano_to_usd(p.output_nano_per_1m),
                   input_nano_usd_per_1m=p.input_nano_per_1m,
                   cached_input_nano_usd_per_1m=p.cached_input_nano_per_1m,
                   output_nano_usd_per_1m=p.output_nano_per_1m)


class GroupPriceOut(BaseModel):
    group: str
    multiplier: str
    multiplier_ppm: int
    source: Literal["model", "group"] = Field(
        description="model: the model's own multiplier for the group; group: the group's.")
    price: PriceOut


class ModelOut(BaseModel):
    id: str
    kind: str
    enabled: bool
    owned_by: str
    visibility: str
    min_tier: int
    context_window: int | None
    default_max_tokens: int
    max_output_tokens: int
    created_at: dt.datetime
    aliases: list[str]
    price: PriceOut
    group_prices: list[GroupPriceOut]

    @classmethod
    def of(cls, d: ModelDetails, groups: list[PriceGroup]) -> ModelOut:
        m = d.model
        group_ppm = {g.name: g.multiplier_ppm for g in groups}
        own = {(m.id, g): ppm for g, ppm in d.multipliers.items()}
        priced = []
        for g in groups:
            ppm = own.get((m.id, g.name), g.multiplier_ppm)
            priced.append(GroupPriceOut(
                group=g.name, multiplier=ppm_to_text(ppm), multiplier_ppm=ppm,
                source="model" if (m.id, g.name) in own else "group",
                price=PriceOut.of(group_price(m.price, m.id, g.name, group_ppm, own))))
        return cls(id=m.id, kind=m.kind, enabled=m.enabled, owned_by=m.owned_by,
                   visibility=m.visibility, min_tier=m.min_tier, context_window=m.context_window,
                   default_max_tokens=m.default_max_tokens,
                   max_output_tokens=m.max_output_tokens, created_at=m.created_at,
                   aliases=d.aliases, price=PriceOut.of(m.price), group_prices=priced)


class ModelListOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]


class PriceGroupOut(BaseModel):
    name: str
    multiplier: str
    multiplier_ppm: int
    description: str | None
    updated_at: dt.datetime

    @classmethod
    def of(cls, g: PriceGroup) -> PriceGroupOut:
        return cls(name=g.name, multiplier=ppm_to_text(g.multiplier_ppm),
                   multiplier_ppm=g.multiplier_ppm, description=g.description,
                   updated_at=g.updated_at)


class PriceGroupListOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[PriceGroupOut]


class OrgPriceGroupOut(BaseModel):
    organization_id: str
    price_group: str
