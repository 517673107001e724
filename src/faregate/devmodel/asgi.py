"""Minimal ASGI plumbing: body reading, JSON/SSE responses, disconnect watching."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.types import Receive, Send

from faregate.devmodel.errors import DevModelError, bad_request

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
MAX_BODY_BYTES = 32 * 1024 * 1024


async def read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise DevModelError(499, "Client closed the request.")
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise DevModelError(413, "Request body too large.", code="request_too_large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def read_json_object(receive: Receive) -> dict[str, Any]:
    raw = await read_body(receive)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_request(
            "We could not parse the JSON body of your request. The body must be valid JSON.",
            None,
        ) from None
    if not isinstance(data, dict):
        raise bad_request("The request body must be a JSON object.", None)
    return data


async def send_json(send: Send, status: int, payload: Any) -> None:
    body = orjson.dumps(payload)
    headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, error: DevModelError) -> None:
    await send_json(send, error.status, error.body())


class SSEWriter:
    """Writes one ``data: {json}`` event per ASGI send; notices client disconnects."""

    def __init__(self, send: Send, receive: Receive) -> None:
        self._send = send
        self._receive = receive
        self._watcher: asyncio.Task[None] | None = None
        self.disconnected = False

    async def start(self) -> None:
        await self._send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        self._watcher = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                return

    async def event(self, payload: Any, name: str | None = None) -> None:
        data = b"data: " + orjson.dumps(payload) + b"\n\n"
        if name is not None:
            data = b"event: " + name.encode() + b"\n" + data
        await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def done(self, marker: bool = True) -> None:
        body = b"data: [DONE]\n\n" if marker else b""
        await self._send({"type": "http.response.body", "body": body, "more_body": False})

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
