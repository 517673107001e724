"""GET /v1/models and /v1/models/{id}: the models this key may call, in OpenAI's shape.

Listed: the public models the organization's tier opens, each followed by its aliases (an
alias is an entry of its own, as OpenAI lists "gpt-4o" next to "gpt-4o-2024-08-06"). A hidden
model is not listed but can be called, and fetched by id, by whoever may use it; a model above
the organization's tier is, here as on every endpoint, a model that does not exist."""

from __future__ import annotations

from typing import Any

from faregate.api_keys.service import Principal
from faregate.catalog.service import CatalogSnapshot, ModelInfo
from faregate.errors import NotFound


def _usable(snapshot: CatalogSnapshot, principal: Principal, model: ModelInfo | None) -> bool:
    return model is not None and model.id in snapshot.routes and \
        model.min_tier <= principal.tier


def _entry(name: str, model: ModelInfo) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": int(model.created_at.timestamp()),
            "owned_by": model.owned_by}


def listed_models(snapshot: CatalogSnapshot, principal: Principal) -> list[dict[str, Any]]:
    names: dict[str, list[str]] = {}
    for alias, model_id in sorted(snapshot.aliases.items()):
        names.setdefault(model_id, []).append(alias)
    out: list[dict[str, Any]] = []
    for m in snapshot.models.values():
        if m.visibility == "public" and _usable(snapshot, principal, m):
            out.append(_entry(m.id, m))
            out.extend(_entry(alias, m) for alias in names.get(m.id, ()))
    return out


def one_model(snapshot: CatalogSnapshot, principal: Principal, wanted: str) -> dict[str, Any]:
    model = snapshot.models.get(snapshot.resolve(wanted))
    if model is None or not _usable(snapshot, principal, model):
        raise NotFound(f"The model `{wanted}` does not exist or you do not have access to it.",
                       param="model", code="model_not_found")
    return _entry(wanted, model)
