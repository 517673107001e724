"""Catalog reads and writes, and the immutable snapshot the hot path routes with."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from faregate.db.schema import (
    model_aliases,
    model_group_multipliers,
    models,
    price_groups,
    upstream_models,
    upstreams,
)
from faregate.errors import InvalidRequest, NotFound, Refused
from faregate.kit.crypto import Cipher
from faregate.pricing.cost import Price
from faregate.pricing.groups import DEFAULT_GROUP, group_price

ModelPrice = Price

BUILTIN_BASE_URL = "builtin:"  # the development model served by this very process


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    kind: str
    price: ModelPrice
    default_max_tokens: int
    max_output_tokens: int
    enabled: bool
    owned_by: str
    created_at: dt.datetime
    visibility: str = "public"  # public | hidden (callable, not listed)
    context_window: int | None = None
    min_tier: int = 0


@dataclass(frozen=True, slots=True)
class UpstreamInfo:
    id: int
    name: str
    base_url: str
    api_key_env: str | None
    has_stored_key: bool
    connect_timeout_ms: int
    read_timeout_ms: int
    enabled: bool
    models: dict[str, str]  # public model id -> upstream's model name
    priority: int = 0
    weight: int = 1


@dataclass(frozen=True, slots=True)
class Route:
    """Where a public model goes: upstream base URL, its credential and name for the model."""

    upstream: str
    base_url: str
    api_key: str | None
    upstream_model: str
    connect_timeout_s: float
    read_timeout_s: float
    upstream_id: int = 0
    priority: int = 0
    weight: int = 1


@dataclass(frozen=True, slots=True)
class CatalogSnapshot:
    models: dict[str, ModelInfo]
    routes: dict[str, list[Route]]  # by public model id, lowest priority number first
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> model id
    # Price multipliers in parts per million: a group's, and a model's own for a group.
    group_multipliers: dict[str, int] = field(default_factory=dict)
    model_multipliers: dict[tuple[str, str], int] = field(default_factory=dict)
    # (model id, group) -> the price that group pays: filled when loaded for every known group
    # (and on first use for any other), so pricing a request is one dict lookup.
    prices: dict[tuple[str, str], Price] = field(default_factory=dict)

    def price_for(self, model: ModelInfo, group: str) -> Price:
        """What an organization in `group` pays for `model` (list price times the multiplier)."""
        found = self.prices.get((model.id, group))
        if found is None:
            found = self.prices[(model.id, group)] = group_price(
                model.price, model.id, group, self.group_multipliers, self.model_multipliers)
        return found

    def resolve(self, name: str) -> str:
        """The model id `name` stands for (itself, or the model an alias points to)."""
        return name if name in self.models else self.aliases.get(name, name)


DEFAULT_MAX_TOKENS = 4096
DEFAULT_MAX_OUTPUT_TOKENS = 32768


def _model(row: sa.Row[tuple[object, ...]]) -> ModelInfo:
    return ModelInfo(
        id=str(row.id), kind=str(row.kind),
        price=ModelPrice(int(row.input_nano_per_1m), int(row.cached_input_nano_per_1m),
                         int(row.output_nano_per_1m)),
        default_max_tokens=int(row.default_max_tokens),
        max_output_tokens=int(row.max_output_tokens),
        enabled=bool(row.enabled), owned_by=str(row.owned_by),
        created_at=row.created_at, visibility=str(row.visibility),
        context_window=row.context_window, min_tier=int(row.min_tier))


def list_models(conn: sa.Connection) -> list[ModelInfo]:
    return [_model(r) for r in conn.execute(sa.select(models).order_by(models.c.id)).all()]


def get_model(conn: sa.Connection, model_id: str) -> ModelInfo:
    row = conn.execute(sa.select(models).where(models.c.id == model_id)).first()
    if row is None:
        raise NotFound(f"no model {model_id!r}", code="model_not_found")
    return _model(row)


def ensure_model(conn: sa.Connection, model_id: str, *, kind: str = "chat",
                 owned_by: str = "faregate") -> None:
    """Create the model with zero prices and default limits if it does not exist."""
    if not model_id or len(model_id) > 200 or any(c.isspace() for c in model_id):
        raise InvalidRequest(f"not a valid model id: {model_id!r}", param="model")
    exists = conn.execute(sa.select(models.c.id).where(models.c.id == model_id)).first()
    if exists is None:
        now = dt.datetime.now(dt.UTC)
        conn.execute(models.insert().values(
            id=model_id, kind=kind, input_nano_per_1m=0, cached_input_nano_per_1m=0,
            output_nano_per_1m=0, default_max_tokens=DEFAULT_MAX_TOKENS,
            max_output_tokens=DEFAULT_MAX_OUTPUT_TOKENS, enabled=True, owned_by=owned_by,
            created_at=now, updated_at=now))


def set_price(conn: sa.Connection, model_id: str, price: ModelPrice) -> ModelInfo:
    done = conn.execute(models.update().where(models.c.id == model_id).values(
        input_nano_per_1m=price.input_nano_per_1m,
        cached_input_nano_per_1m=price.cached_input_nano_per_1m,
        output_nano_per_1m=price.output_nano_per_1m, updated_at=dt.datetime.now(dt.UTC)))
    if done.rowcount != 1:
        raise NotFound(f"no model {model_id!r}")
    return _model(conn.execute(sa.select(models).where(models.c.id == model_id)).one())


def set_limits(conn: sa.Connection, model_id: str, *, default_max_tokens: int,
               max_output_tokens: int) -> None:
    if not 1 <= default_max_tokens <= max_output_tokens:
        raise InvalidRequest("need 1 <= default max tokens <= max output tokens")
    done = conn.execute(models.update().where(models.c.id == model_id).values(
        default_max_tokens=default_max_tokens, max_output_tokens=max_output_tokens,
        updated_at=dt.datetime.now(dt.UTC)))
    if done.rowcount != 1:
        raise NotFound(f"no model {model_id!r}")


def parse_model_map(spec: str) -> dict[str, str]:
    """"a,b=upstream-b" -> {"a": "a", "b": "upstream-b"}."""
    mapping: dict[str, str] = {}
    for part in spec.split(","):
        public, _, upstream_name = part.strip().partition("=")
        public, upstream_name = public.strip(), (upstream_name.strip() or public.strip())
        if not public:
            raise InvalidRequest("empty model name in --models", param="models")
        mapping[public] = upstream_name
    return mapping


def add_upstream(conn: sa.Connection, *, name: str, base_url: str, model_map: dict[str, str],
                 api_key: str | None, api_key_env: str | None, cipher: Cipher,
                 connect_timeout_ms: int = 10_000, read_timeout_ms: int = 600_000,
                 kind: str = "chat") -> UpstreamInfo:
    if not (base_url.startswith(("http://", "https://")) or base_url == BUILTIN_BASE_URL):
        raise InvalidRequest("base URL must start with http:// or https://", param="base_url")
    try:
        with conn.begin_nested():
            upstream_id = conn.execute(upstreams.insert().values(
                name=name, base_url=base_url.rstrip("/"),
                api_key_encrypted=cipher.encrypt(api_key) if api_key else None,
                api_key_env=api_key_env, connect_timeout_ms=connect_timeout_ms,
                read_timeout_ms=read_timeout_ms, enabled=True,
                created_at=dt.datetime.now(dt.UTC)).returning(upstreams.c.id)).scalar_one()
    except IntegrityError:
        raise Refused(f"an upstream named {name!r} already exists") from None
    for public, upstream_name in model_map.items():
        ensure_model(conn, public, kind=kind)
        conn.execute(upstream_models.insert().values(
            upstream_id=upstream_id, model_id=public, upstream_model=upstream_name))
    return get_upstream(conn, name)


def get_upstream(conn: sa.Connection, name: str) -> UpstreamInfo:
    found = [u for u in list_upstreams(conn) if u.name == name]
    if not found:
        raise NotFound(f"no upstream {name!r}")
    return found[0]


def list_upstreams(conn: sa.Connection) -> list[UpstreamInfo]:
    maps: dict[int, dict[str, str]] = {}
    for row in conn.execute(sa.select(upstream_models)).all():
        maps.setdefault(int(row.upstream_id), {})[str(row.model_id)] = str(row.upstream_model)
    return [UpstreamInfo(int(r.id), str(r.name), str(r.base_url), r.api_key_env,
                         r.api_key_encrypted is not None, int(r.connect_timeout_ms),
                         int(r.read_timeout_ms), bool(r.enabled), maps.get(int(r.id), {}),
                         int(r.priority), int(r.weight))
            for r in conn.execute(sa.select(upstreams).order_by(upstreams.c.id)).all()]


def load_snapshot(conn: sa.Connection, cipher: Cipher, builtin_base_url: str) -> CatalogSnapshot:
    """Everything the hot path needs to route and price, read in one go."""
    model_map = {m.id: m for m in list_models(conn) if m.enabled}
    routes: dict[str, list[Route]] = {}
    stored = {int(r.id): r.api_key_encrypted for r in
              conn.execute(sa.select(upstreams.c.id, upstreams.c.api_key_encrypted)).all()}
    for up in list_upstreams(conn):
        if not up.enabled:
            continue
        key: str | None = None
        if up.api_key_env:
            key = os.environ.get(up.api_key_env)
        elif stored.get(up.id):
            key = cipher.decrypt(str(stored[up.id]))
        base = builtin_base_url if up.base_url == BUILTIN_BASE_URL else up.base_url
        for public, upstream_name in up.models.items():
            if public in model_map:
                routes.setdefault(public, []).append(Route(
                    up.name, base, key, upstream_name, up.connect_timeout_ms / 1000,
                    up.read_timeout_ms / 1000, up.id, up.priority, up.weight))
    for candidates in routes.values():
        candidates.sort(key=lambda r: (r.priority, r.upstream_id))
    aliases = {str(r.alias): str(r.model_id) for r in conn.execute(sa.select(model_aliases))
               if str(r.model_id) in model_map}
    groups = {str(r.name): int(r.multiplier_ppm) for r in conn.execute(sa.select(price_groups))}
    per_model = {(str(r.model_id), str(r.group_name)): int(r.multiplier_ppm)
                 for r in conn.execute(sa.select(model_group_multipliers))}
    prices = {(m.id, g): group_price(m.price, m.id, g, groups, per_model)
              for m in model_map.values() for g in {DEFAULT_GROUP, *groups}}
    return CatalogSnapshot(model_map, routes, aliases, groups, per_model, prices)


def catalog_version(conn: sa.Connection) -> tuple[object, ...]:
    """A cheap fingerprint of the catalog: it changes whenever a model, upstream, route, alias,
    price group or multiplier is added or changed (writers set `updated_at`; alias and
    per-model multiplier changes set their model's), so the gateway reloads only then."""
    row = conn.execute(sa.select(
        sa.select(sa.func.max(models.c.updated_at)).scalar_subquery(),
        sa.select(sa.func.count()).select_from(models).scalar_subquery(),
        sa.select(sa.func.max(upstreams.c.id)).scalar_subquery(),
        sa.select(sa.func.count()).select_from(upstreams).scalar_subquery(),
        sa.select(sa.func.count()).select_from(upstream_models).scalar_subquery(),
        sa.select(sa.func.max(upstreams.c.updated_at)).scalar_subquery(),
        sa.select(sa.func.count()).select_from(model_aliases).scalar_subquery(),
        sa.select(sa.func.max(price_groups.c.updated_at)).scalar_subquery(),
        sa.select(sa.func.count()).select_from(price_groups).scalar_subquery(),
        sa.select(sa.func.count()).select_from(model_group_multipliers).scalar_subquery(),
        sa.select(sa.func.sum(model_group_multipliers.c.multiplier_ppm)).scalar_subquery(),
    )).one()
    return tuple(row)
