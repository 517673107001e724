"""``GET /v1/models`` and ``GET /v1/models/{id}``."""

from __future__ import annotations

from typing import Any

from faregate.devmodel.errors import model_not_found
from faregate.devmodel.options import SERVED_MODELS, is_dev_model

MODELS_CREATED = 1_767_225_600  # 2026-01-01T00:00:00Z, fixed so listings are stable
OWNER = "faregate"


def model_object(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": MODELS_CREATED, "owned_by": OWNER}


def list_models() -> dict[str, Any]:
    return {"object": "list", "data": [model_object(m) for m in SERVED_MODELS]}


def retrieve_model(model_id: str) -> dict[str, Any]:
    """Any name starting with ``faregate-dev`` exists (options after ``:`` included)."""
    if not is_dev_model(model_id):
        raise model_not_found(model_id)
    return model_object(model_id)
