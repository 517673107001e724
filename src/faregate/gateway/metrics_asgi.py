"""Request metrics (and the optional access log line) for /v1, as ASGI middleware around the
gateway app: the gateway itself does not know about them.

Per request it counts faregate_requests_total{endpoint,status} and observes the duration and
time-to-first-byte histograms. Labels are bounded: the endpoint comes from a fixed table of
paths, the status is the HTTP status sent (499 when the client went away before any response
was sent). The metric children are looked up once per label set and kept, so the hot path pays
a dict lookup and the increments."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from prometheus_client import Counter, Histogram

from faregate.gateway.asgi_io import Message, Receive, Scope, Send
from faregate.kit.logjson import REQUEST_ID
from faregate.kit.metrics import FIRST_BYTE_SECONDS, REQUEST_SECONDS, REQUESTS

log = logging.getLogger("faregate.access")

ENDPOINTS = {"/v1/chat/completions": "chat", "/v1/completions": "completions",
             "/v1/embeddings": "embeddings", "/v1/responses": "responses",
             "/v1/models": "models"}
PREFIXES = (("/v1/models/", "models"), ("/v1/organization/", "admin_usage"),
            ("/v1/faregate/requests/", "request_lookup"))
CLIENT_GONE = 499  # nginx's code for "the client closed the connection first"

AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def endpoint_label(path: str) -> str:
    """One of a fixed set of names, whatever the path."""
    path = path.rstrip("/")
    name = ENDPOINTS.get(path)
    if name is not None:
        return name
    for prefix, name in PREFIXES:
        if path.startswith(prefix):
            return name
    return "other"


class RequestMetrics:
    def __init__(self, app: AsgiApp, *, access_log: bool = False) -> None:
        self.app = app
        self.access_log = access_log
        self._counted: dict[tuple[str, int], Counter] = {}
        self._durations: dict[str, Histogram] = {}
        self._first_bytes: dict[str, Histogram] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        began = time.perf_counter()
        status = 0
        first_byte = 0.0

        async def observed_send(message: Message) -> None:
            nonlocal status, first_byte
            if message["type"] == "http.response.start":
                status = int(message["status"])
                first_byte = time.perf_counter() - began
                for name, value in message.get("headers") or ():
                    if name == b"x-request-id":
                        # Log lines from here on in this request carry its id.
                        REQUEST_ID.set(bytes(value).decode("latin-1"))
                        break
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            self._record(scope, status, first_byte, time.perf_counter() - began)

    def _record(self, scope: Scope, status: int, first_byte: float, elapsed: float) -> None:
        endpoint = endpoint_label(scope["path"])
        code = status or CLIENT_GONE
        counter = self._counted.get((endpoint, code))
        if counter is None:
            counter = self._counted[(endpoint, code)] = REQUESTS.labels(endpoint, str(code))
        counter.inc()
        duration = self._durations.get(endpoint)
        if duration is None:
            duration = self._durations[endpoint] = REQUEST_SECONDS.labels(endpoint)
            self._first_bytes[endpoint] = FIRST_BYTE_SECONDS.labels(endpoint)
        duration.observe(elapsed)
        if status:
            self._first_bytes[endpoint].observe(first_byte)
        if self.access_log:
            rid = REQUEST_ID.get()
            log.info("%s %s %d %.1fms %s", scope["method"], scope["path"], code,
                     elapsed * 1000, rid or "-",
                     extra={"endpoint": endpoint, "status": code,
                            "duration_ms": round(elapsed * 1000, 1), "request_id": rid})
