"""The development model as a plain ASGI application (no framework on the request path).

Routes, relative to the app's root (``root_path`` is honoured, so it can be mounted):
``GET /v1/models``, ``GET /v1/models/{id}``, ``POST /v1/chat/completions``,
``POST /v1/completions``, ``POST /v1/embeddings``, ``POST /v1/responses`` and
``GET /health``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from faregate.devmodel.asgi import read_json_object, send_error, send_json
from faregate.devmodel.call import Call
from faregate.devmodel.chat import handle_chat
from faregate.devmodel.completions import handle_completions
from faregate.devmodel.embeddings import handle_embeddings
from faregate.devmodel.errors import DevModelError, injected_failure
from faregate.devmodel.models import list_models, retrieve_model
from faregate.devmodel.options import parse_model
from faregate.devmodel.params import require_str
from faregate.devmodel.responses import handle_responses

Handler = Callable[[dict[str, Any], Call], Awaitable[None]]

POST_ROUTES: dict[str, Handler] = {
    "/v1/chat/completions": handle_chat,
    "/v1/completions": handle_completions,
    "/v1/embeddings": handle_embeddings,
    "/v1/responses": handle_responses,
}
MODELS_PATH = "/v1/models"


def route_path(scope: Scope) -> str:
    """The request path relative to ``root_path`` (as Starlette's ``Mount`` leaves it)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        path = path[len(root) :]
    return path.rstrip("/") or "/"


def _not_found(method: str, path: str) -> DevModelError:
    return DevModelError(404, f"Invalid URL ({method} {path})", type_="invalid_request_error")


def _not_allowed(method: str, path: str) -> DevModelError:
    return DevModelError(405, f"Method not allowed ({method} {path})")


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_devmodel_app(token_latency_ms: float = 0.0) -> ASGIApp:
    """Build the ASGI app; ``token_latency_ms`` is the delay per emitted piece."""
    latency_s = max(0.0, token_latency_ms) / 1000.0

    def get(path: str, method: str) -> dict[str, Any]:
        if path == "/health":
            return {"status": "ok"}
        if path == MODELS_PATH:
            return list_models()
        if path.startswith(MODELS_PATH + "/"):
            return retrieve_model(path[len(MODELS_PATH) + 1 :])
        raise _not_found(method, path)

    async def post(handler: Handler, receive: Receive, send: Send) -> None:
        body = await read_json_object(receive)
        model = require_str(body, "model")
        options = parse_model(model)
        if options.slow_first_byte_ms:
            await asyncio.sleep(options.slow_first_byte_ms / 1000.0)
        if options.fail is not None:
            raise injected_failure(options.fail)
        await handler(body, Call(send, receive, model, options, latency_s))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = route_path(scope)
        method: str = scope["method"]
        try:
            handler = POST_ROUTES.get(path)
            if handler is not None:
                if method != "POST":
                    raise _not_allowed(method, path)
                await post(handler, receive, send)
            elif method in ("GET", "HEAD"):
                await send_json(send, 200, get(path, method))
            else:
                raise _not_found(method, path)
        except DevModelError as error:
            await send_error(send, error)

    return app
