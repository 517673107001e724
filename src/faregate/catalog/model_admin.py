"""The operator's writes to the model catalog: models, aliases, price groups and multipliers,
and which price group an organization is in.

Every write takes the acting operator (`actor`, e.g. "operator:op_…" or "cli:alice") and
their IP, and appends an audit event with the record before and after, in the caller's
transaction. Each write also moves the `updated_at` the gateway's catalog fingerprint watches
(an alias or per-model multiplier moves its model's), so running servers price and route with
it within about a second. A request already running keeps the price its hold was made with."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from faregate.audit.changes import record_change
from faregate.catalog.service import (
    DEFAULT_MAX_OUTPUT_TOKENS,
    DEFAULT_MAX_TOKENS,
    ModelInfo,
    ModelPrice,
    get_model,
    list_models,
)
from faregate.db.schema import (
    model_aliases,
    model_group_multipliers,
    models,
    organizations,
    price_groups,
)
from faregate.errors import InvalidRequest, NotFound, Refused
from faregate.pricing.groups import DEFAULT_GROUP, MAX_MULTIPLIER_PPM, PPM_ONE
from faregate.tiers import UNLIMITED_TIER

KINDS = ("chat", "embedding")
VISIBILITIES = ("public", "hidden")
MAX_TOKENS_LIMIT = 10_000_000
MAX_ID_LENGTH = 200
MAX_GROUP_LENGTH = 40
FREE = ModelPrice(0, 0, 0)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _check_name(value: str, what: str, param: str, max_length: int = MAX_ID_LENGTH) -> None:
    if not value or len(value) > max_length or any(c.isspace() or c == "/" for c in value):
        raise InvalidRequest(f"not a valid {what}: {value!r} (1-{max_length} characters, no "
                             "spaces or slashes)", param=param)


@dataclass(frozen=True, slots=True)
class PriceGroup:
    name: str
    multiplier_ppm: int
    description: str | None
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class ModelDetails:
    """A model with its aliases and its own per-group multipliers (for the console)."""

    model: ModelInfo
    aliases: list[str]
    multipliers: dict[str, int]  # group -> ppm


@dataclass(frozen=True, slots=True)
class ModelChange:
    """The fields to change; None leaves a field as it is."""

    input_nano_per_1m: int | None = None
    cached_input_nano_per_1m: int | None = None
    output_nano_per_1m: int | None = None
    default_max_tokens: int | None = None
    max_output_tokens: int | None = None
    visibility: str | None = None
    context_window: int | None = None
    clear_context_window: bool = False  # back to "no window enforced"
    min_tier: int | None = None
    owned_by: str | None = None
    enabled: bool | None = None


def _record(info: ModelInfo) -> dict[str, Any]:
    """A model as the audit trail shows it (prices in nano-USD per 1M tokens)."""
    return {"id": info.id, "kind": info.kind,
            "input_nano_per_1m": info.price.input_nano_per_1m,
            "cached_input_nano_per_1m": info.price.cached_input_nano_per_1m,
            "output_nano_per_1m": info.price.output_nano_per_1m,
            "default_max_tokens": info.default_max_tokens,
            "max_output_tokens": info.max_output_tokens, "enabled": info.enabled,
            "owned_by": info.owned_by, "visibility": info.visibility,
            "context_window": info.context_window, "min_tier": info.min_tier}


def _validate(record: dict[str, Any]) -> None:
    if record["kind"] not in KINDS:
        raise InvalidRequest(f"kind must be one of {', '.join(KINDS)}", param="kind")
    if record["visibility"] not in VISIBILITIES:
        raise InvalidRequest(f"visibility must be one of {', '.join(VISIBILITIES)}",
                             param="visibility")
    for field_name in ("input_nano_per_1m", "cached_input_nano_per_1m", "output_nano_per_1m"):
        if record[field_name] < 0:
            raise InvalidRequest("prices cannot be negative", param=field_name)
    if not 1 <= record["default_max_tokens"] <= record["max_output_tokens"] <= MAX_TOKENS_LIMIT:
        raise InvalidRequest(f"need 1 <= default max tokens <= max output tokens <= "
                             f"{MAX_TOKENS_LIMIT}", param="max_output_tokens")
    window = record["context_window"]
    if window is not None and not 1 <= window <= MAX_TOKENS_LIMIT:
        raise InvalidRequest(f"context window must be between 1 and {MAX_TOKENS_LIMIT} tokens",
                             param="context_window")
    if not 0 <= record["min_tier"] <= UNLIMITED_TIER:
        raise InvalidRequest(f"min tier must be between 0 and {UNLIMITED_TIER}",
                             param="min_tier")
    if not record["owned_by"] or len(record["owned_by"]) > 120:
        raise InvalidRequest("owned_by must have 1-120 characters", param="owned_by")


def create_model(conn: sa.Connection, *, model_id: str, actor: str, ip: str | None = None,
                 kind: str = "chat", price: ModelPrice = FREE,
                 default_max_tokens: int = DEFAULT_MAX_TOKENS,
                 max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS,
                 visibility: str = "public", context_window: int | None = None,
                 min_tier: int = 0, owned_by: str = "faregate") -> ModelInfo:
    """Add a model (it serves nothing until an upstream routes it)."""
    _check_name(model_id, "model id", "id")
    record: dict[str, Any] = {
        "id": model_id, "kind": kind, "input_nano_per_1m": price.input_nano_per_1m,
        "cached_input_nano_per_1m": price.cached_input_nano_per_1m,
        "output_nano_per_1m": price.output_nano_per_1m,
        "default_max_tokens": default_max_tokens, "max_output_tokens": max_output_tokens,
        "enabled": True, "owned_by": owned_by, "visibility": visibility,
        "context_window": context_window, "min_tier": min_tier}
    _validate(record)
    if conn.execute(sa.select(models.c.id).where(models.c.id == model_id)).first() is not None:
        raise Refused(f"a model {model_id!r} already exists", code="model_exists")
    if _alias_target(conn, model_id) is not None:
        raise Refused(f"{model_id!r} is already an alias", code="name_taken")
    now = _now()
    conn.execute(models.insert().values(**record, created_at=now, updated_at=now))
    info = get_model(conn, model_id)
    record_change(conn, actor=actor, action="model.created", target=f"model:{model_id}",
                  before=None, after=_record(info), ip=ip)
    return info


def update_model(conn: sa.Connection, model_id: str, change: ModelChange, *, actor: str,
                 ip: str | None = None) -> ModelInfo:
    """Change any of a model's fields; a price change applies to requests that start after it
    is saved (each hold carries the price it was made with)."""
    before = get_model(conn, model_id)
    record = _record(before)
    updates = {k: getattr(change, k) for k in (
        "input_nano_per_1m", "cached_input_nano_per_1m", "output_nano_per_1m",
        "default_max_tokens", "max_output_tokens", "visibility", "context_window", "min_tier",
        "owned_by", "enabled") if getattr(change, k) is not None}
    if change.clear_context_window:
        if change.context_window is not None:
            raise InvalidRequest("give a context window or clear it, not both",
                                 param="context_window")
        updates["context_window"] = None
    record.update(updates)
    _validate(record)
    if not updates or record == _record(before):
        return before
    conn.execute(models.update().where(models.c.id == model_id).values(
        **updates, updated_at=_now()))
    after = get_model(conn, model_id)
    record_change(conn, actor=actor, action="model.updated", target=f"model:{model_id}",
                  before=_record(before), after=_record(after), ip=ip)
    return after


def _touch_model(conn: sa.Connection, model_id: str) -> None:
    """Move the catalog fingerprint (aliases and multipliers have no time of their own)."""
    conn.execute(models.update().where(models.c.id == model_id).values(updated_at=_now()))


def _alias_target(conn: sa.Connection, alias: str) -> str | None:
    found = conn.execute(sa.select(model_aliases.c.model_id).where(
        model_aliases.c.alias == alias)).scalar_one_or_none()
    return None if found is None else str(found)


def aliases_of(conn: sa.Connection) -> dict[str, list[str]]:
    """model id -> its aliases, sorted."""
    out: dict[str, list[str]] = {}
    for row in conn.execute(sa.select(model_aliases).order_by(model_aliases.c.alias)):
        out.setdefault(str(row.model_id), []).append(str(row.alias))
    return out


def add_alias(conn: sa.Connection, alias: str, model_id: str, *, actor: str,
              ip: str | None = None) -> None:
    """Another public name for a model; it may not be a model id or another alias."""
    _check_name(alias, "alias", "alias")
    get_model(conn, model_id)
    if conn.execute(sa.select(models.c.id).where(models.c.id == alias)).first() is not None:
        raise Refused(f"{alias!r} is a model id; an alias needs a name of its own",
                      code="name_taken")
    target = _alias_target(conn, alias)
    if target is not None:
        raise Refused(f"{alias!r} is already an alias of {target!r}", code="name_taken")
    conn.execute(model_aliases.insert().values(alias=alias, model_id=model_id,
                                               created_at=_now()))
    _touch_model(conn, model_id)
    record_change(conn, actor=actor, action="model.alias_added", target=f"model:{model_id}",
                  before=None, after={"alias": alias, "model_id": model_id}, ip=ip)


def remove_alias(conn: sa.Connection, alias: str, *, actor: str, ip: str | None = None) -> None:
    target = _alias_target(conn, alias)
    if target is None:
        raise NotFound(f"no alias {alias!r}")
    conn.execute(model_aliases.delete().where(model_aliases.c.alias == alias))
    _touch_model(conn, target)
    record_change(conn, actor=actor, action="model.alias_removed", target=f"model:{target}",
                  before={"alias": alias, "model_id": target}, after=None, ip=ip)


def _group_row(conn: sa.Connection, name: str) -> PriceGroup | None:
    row = conn.execute(sa.select(price_groups).where(price_groups.c.name == name)).first()
    if row is None:
        return None
    return PriceGroup(str(row.name), int(row.multiplier_ppm), row.description, row.updated_at)


def _group_record(group: PriceGroup) -> dict[str, Any]:
    return {"name": group.name, "multiplier_ppm": group.multiplier_ppm,
            "description": group.description}


def list_price_groups(conn: sa.Connection) -> list[PriceGroup]:
    return [PriceGroup(str(r.name), int(r.multiplier_ppm), r.description, r.updated_at)
            for r in conn.execute(sa.select(price_groups).order_by(price_groups.c.name))]


def _check_ppm(ppm: int) -> None:
    if not 0 <= ppm <= MAX_MULTIPLIER_PPM:
        raise InvalidRequest(f"a multiplier must be between 0 and "
                             f"{MAX_MULTIPLIER_PPM // PPM_ONE} (x1 = 1000000 ppm)",
                             param="multiplier")


def set_price_group(conn: sa.Connection, name: str, multiplier_ppm: int, *, actor: str,
                    ip: str | None = None, description: str | None = None) -> PriceGroup:
    """Create a price group or change its multiplier (and description, when given)."""
    _check_name(name, "price group name", "name", MAX_GROUP_LENGTH)
    _check_ppm(multiplier_ppm)
    if description is not None and len(description) > 300:
        raise InvalidRequest("a description has at most 300 characters", param="description")
    before = _group_row(conn, name)
    now = _now()
    if before is None:
        conn.execute(price_groups.insert().values(
            name=name, multiplier_ppm=multiplier_ppm, description=description, updated_at=now))
    else:
        conn.execute(price_groups.update().where(price_groups.c.name == name).values(
            multiplier_ppm=multiplier_ppm, updated_at=now,
            description=before.description if description is None else description))
    after = _group_row(conn, name)
    assert after is not None
    record_change(conn, actor=actor, action="price_group.created" if before is None else
                  "price_group.updated", target=f"price_group:{name}",
                  before=_group_record(before) if before else None, after=_group_record(after),
                  ip=ip)
    return after


def model_multipliers(conn: sa.Connection) -> dict[str, dict[str, int]]:
    """model id -> {group: ppm} for the models that have their own multipliers."""
    out: dict[str, dict[str, int]] = {}
    for row in conn.execute(sa.select(model_group_multipliers)):
        out.setdefault(str(row.model_id), {})[str(row.group_name)] = int(row.multiplier_ppm)
    return out


def set_model_multiplier(conn: sa.Connection, model_id: str, group: str,
                         multiplier_ppm: int | None, *, actor: str,
                         ip: str | None = None) -> None:
    """Set the model's own multiplier for `group` (it wins over the group's), or clear it
    (None: the group's applies again)."""
    get_model(conn, model_id)
    if _group_row(conn, group) is None:
        raise NotFound(f"no price group {group!r}")
    where = sa.and_(model_group_multipliers.c.model_id == model_id,
                    model_group_multipliers.c.group_name == group)
    old = conn.execute(sa.select(model_group_multipliers.c.multiplier_ppm).where(where)
                       ).scalar_one_or_none()
    if multiplier_ppm is None:
        if old is None:
            raise NotFound(f"model {model_id!r} has no multiplier of its own for {group!r}")
        conn.execute(model_group_multipliers.delete().where(where))
    else:
        _check_ppm(multiplier_ppm)
        if old is None:
            conn.execute(model_group_multipliers.insert().values(
                model_id=model_id, group_name=group, multiplier_ppm=multiplier_ppm))
        else:
            conn.execute(model_group_multipliers.update().where(where).values(
                multiplier_ppm=multiplier_ppm))
    _touch_model(conn, model_id)
    action = "model.group_multiplier_cleared" if multiplier_ppm is None else \
        "model.group_multiplier_set"
    record_change(conn, actor=actor, action=action, target=f"model:{model_id}",
                  before=None if old is None else {"group": group, "multiplier_ppm": int(old)},
                  after=None if multiplier_ppm is None else
                  {"group": group, "multiplier_ppm": multiplier_ppm}, ip=ip)


def set_org_price_group(conn: sa.Connection, organization_id: str, group: str | None, *,
                        actor: str, ip: str | None = None) -> str:
    """Put an organization in a price group (None or "default": the default group); servers
    apply it within the key cache's lifetime (about 2 s). Returns the group in force."""
    if group is not None and group != DEFAULT_GROUP and _group_row(conn, group) is None:
        raise NotFound(f"no price group {group!r}")
    stored = None if group in (None, DEFAULT_GROUP) else group
    old = conn.execute(sa.select(organizations.c.price_group).where(
        organizations.c.id == organization_id)).first()
    if old is None:
        raise NotFound(f"no organization {organization_id!r}")
    conn.execute(organizations.update().where(organizations.c.id == organization_id).values(
        price_group=stored))
    record_change(conn, actor=actor, action="organization.price_group_set",
                  target=organization_id, organization_id=organization_id, ip=ip,
                  before={"price_group": old.price_group or DEFAULT_GROUP},
                  after={"price_group": stored or DEFAULT_GROUP})
    return stored or DEFAULT_GROUP


def list_model_details(conn: sa.Connection) -> list[ModelDetails]:
    names = aliases_of(conn)
    mults = model_multipliers(conn)
    return [ModelDetails(m, names.get(m.id, []), mults.get(m.id, {}))
            for m in list_models(conn)]


def model_details(conn: sa.Connection, model_id: str) -> ModelDetails:
    info = get_model(conn, model_id)
    return ModelDetails(info, aliases_of(conn).get(model_id, []),
                        model_multipliers(conn).get(model_id, {}))
