"""What every HTTP response and request body gets, around the whole application:

- security headers on every response (kept when a page set its own): nosniff, no framing, no
  referrer, `Cache-Control: no-store` on the JSON APIs, and HSTS when configured;
- a cap on request bodies outside /v1 (the relay enforces its own, larger one while it reads):
  a declared Content-Length over it gets 413 at once; a chunked body that grows past it is cut
  off (the app sees a disconnect) and answered 413. Errors are JSON in the API's format."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

NOSNIFF = (b"x-content-type-options", b"nosniff")
_COMMON = (NOSNIFF, (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer"))
_NO_STORE = (b"cache-control", b"no-store")
_API_PREFIXES = ("/api/", "/admin/api/")


def _too_large(limit: int) -> bytes:
    return orjson.dumps({"error": {
        "message": f"Request body too large: the limit is {limit} bytes.",
        "type": "invalid_request_error", "param": None, "code": "request_too_large"}})


class BodyTooLarge(Exception):
    pass


class Guard:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, hsts_max_age_s: int = 0) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        extra = [(b"strict-transport-security",
                  f"max-age={hsts_max_age_s}; includeSubDomains".encode())] \
            if hsts_max_age_s else []
        self.hsts = extra  # /v1 gets only nosniff and this (faregate/app.py)
        self.common = [*_COMMON, *extra]
        self.api = [*self.common, _NO_STORE]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        add = self.api if path.startswith(_API_PREFIXES) else self.common
        started = False
        cut = False

        def with_headers(message: Message) -> Message:
            have = {k.lower() for k, _ in message.get("headers", ())}
            missing = [h for h in add if h[0] not in have]
            if not missing:
                return message
            return {**message, "headers": [*message.get("headers", ()), *missing]}

        async def send_guarded(message: Message) -> None:
            nonlocal started
            if cut:  # the body was cut off: whatever the app says, the answer is 413
                if not started:
                    started = True
                    await self._refuse(send, limit, with_headers)
                return
            if message["type"] == "http.response.start":
                started = True
                message = with_headers(message)
            await send(message)

        limit = self.max_body_bytes
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    await self._refuse(send, limit, with_headers)
                    return
                break
        seen = 0

        async def receive_counted() -> Message:
            nonlocal seen, cut
            if cut:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    cut = True
                    return {"type": "http.disconnect"}
            return message

        try:
            await self.app(scope, receive_counted, send_guarded)
        except Exception:
            if not cut:
                raise
        if cut and not started:
            await self._refuse(send, limit, with_headers)

    @staticmethod
    async def _refuse(send: Send, limit: int, decorate: Callable[[Message], Message]) -> None:
        body = _too_large(limit)
        await send(decorate({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")]}))
        await send({"type": "http.response.body", "body": body})
