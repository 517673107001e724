"""GET /v1/models and /v1/models/{id}: the models this key may call, in OpenAI's shape."""

from __future__ import annotations

from typing import Any

from faregate.api_keys.service import Principal
from faregate.catalog.service import CatalogSnapshot
from faregate.errors import NotFound


def listed_models(snapshot: CatalogSnapshot, principal: Principal) -> list[dict[str, Any]]:
    return [
        {"id": m.id, "object": "model", "created": int(m.created_at.timestamp()),
         "owned_by": m.owned_by}
        for m in snapshot.models.values() if m.id in snapshot.routes]


def one_model(snapshot: CatalogSnapshot, principal: Principal, wanted: str) -> dict[str, Any]:
    for item in listed_models(snapshot, principal):
        if item["id"] == wanted:
            return item
    raise NotFound(f"The model `{wanted}` does not exist or you do not have access to it.",
                   param="model", code="model_not_found")
