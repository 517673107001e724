"""What a key may do on /v1: endpoint groups ("scopes"), and the presets users pick from."""

from __future__ import annotations

from typing import Literal

Permissions = Literal["all", "restricted", "read_only"]
KeyKind = Literal["project", "admin", "service"]

# Scope -> what it opens, as shown to users.
SCOPES: dict[str, str] = {
    "models.read": "List and read models (GET /v1/models)",
    "requests.read": "Read the record of a request (GET /v1/faregate/requests/{id})",
    "chat.write": "Chat completions and completions (POST /v1/chat/completions, "
                  "/v1/completions)",
    "responses.write": "Responses (POST /v1/responses)",
    "embeddings.write": "Embeddings (POST /v1/embeddings)",
}
READ_ONLY = frozenset({"models.read", "requests.read"})

# The scope each /v1 endpoint needs.
ENDPOINT_SCOPE: dict[str, str] = {
    "models": "models.read", "requests": "requests.read", "chat": "chat.write",
    "completions": "chat.write", "responses": "responses.write",
    "embeddings": "embeddings.write",
}


def allowed_scopes(permissions: str, scopes: str | None) -> frozenset[str] | None:
    """The scopes a key has; None means every scope (permissions "all")."""
    if permissions == "all":
        return None
    if permissions == "read_only":
        return READ_ONLY
    return frozenset(s for s in (scopes or "").split(",") if s)
