"""Request logging on the gateway: capture a logged request's bodies as they pass, and write
them off the request path.

A request is logged only when its key's organization has logging on (Principal.log_requests)
or FAREGATE_REQUEST_LOG=all; the gateway checks that once and otherwise does nothing of this.
A logged request's ASGI `receive` and `send` are wrapped: the request body as the client sent
it and the response body as it went out (for streams, the SSE bytes) are kept up to the cap,
never a header. When the request ends the capture is handed to the writer, whose queue is
bounded in entries and bytes: when it is full the log is dropped and counted, and the request
never waits. The writer's task seals (compresses, encrypts) and inserts them in batches."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import deque

import orjson

from faregate.db.runner import Database
from faregate.errors import FaregateError
from faregate.gateway.asgi_io import ClientGone, Message, Receive, Send
from faregate.kit.sealed import Sealer
from faregate.usage.request_logs import Captured, sealed_rows, write_logs

log = logging.getLogger("faregate.gateway")

MAX_PENDING = 1000
MAX_PENDING_BYTES = 64 * 1024 * 1024
BATCH = 50
_WARN_EVERY_S = 60.0
_CLIENT_GONE = 499  # nothing was sent: the client left first


class Capture:
    """The bodies of one logged request, as far as they are kept."""

    __slots__ = ("_request", "_request_size", "_response", "_response_size", "created_at",
                 "endpoint", "max_bytes", "organization_id", "request_id", "status_code")

    def __init__(self, request_id: str, organization_id: str, endpoint: str,
                 max_bytes: int) -> None:
        self.request_id = request_id
        self.organization_id = organization_id
        self.endpoint = endpoint
        self.max_bytes = max_bytes
        self.created_at = dt.datetime.now(dt.UTC)
        self.status_code = 0
        self._request: list[bytes] = []
        self._request_size = 0
        self._response: list[bytes] = []
        self._response_size = 0

    def receive(self, receive: Receive) -> Receive:
        async def capturing() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                room = self.max_bytes - self._request_size
                if room > 0 and body:
                    self._request.append(body[:room])
                self._request_size += len(body)
            return message
        return capturing

    def send(self, send: Send) -> Send:
        async def capturing(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.status_code = int(message["status"])
            elif message["type"] == "http.response.body":
                self._keep_response(message.get("body", b""))
            await send(message)
        return capturing

    def _keep_response(self, body: bytes) -> None:
        room = self.max_bytes - self._response_size
        if room > 0 and body:
            self._response.append(body[:room])
        self._response_size += len(body)

    def failed(self, error: BaseException) -> None:
        """The request ended with an error the app answers after the relay (if nothing was
        sent yet): log that answer."""
        if self.status_code:
            return
        if isinstance(error, FaregateError):
            self.status_code = error.status
            self._keep_response(orjson.dumps(error.body()))
        elif isinstance(error, ClientGone | asyncio.CancelledError):
            self.status_code = _CLIENT_GONE
        else:
            self.status_code = 500

    def finish(self) -> Captured:
        return Captured(
            self.request_id, self.organization_id, self.created_at, self.endpoint,
            self.status_code or _CLIENT_GONE, b"".join(self._request), self._request_size,
            b"".join(self._response), self._response_size)


class RequestLogWriter:
    """A bounded queue of captured requests, drained in batches by `run()`."""

    def __init__(self, db: Database, sealer: Sealer, *, max_pending: int = MAX_PENDING,
                 max_pending_bytes: int = MAX_PENDING_BYTES, batch: int = BATCH) -> None:
        self.db = db
        self.sealer = sealer
        self._max_pending = max_pending
        self._max_pending_bytes = max_pending_bytes
        self._batch = batch
        self._pending: deque[Captured] = deque()
        self._pending_bytes = 0  # of the queue and of the batch being written
        self._wake = asyncio.Event()
        self._inflight: asyncio.Future[None] | None = None
        self._warned_at = -_WARN_EVERY_S
        self.written = 0
        self.dropped = 0  # the queue was full
        self.failed = 0  # the database refused a batch

    def submit(self, captured: Captured) -> bool:
        """Queue a log without waiting; False (and counted) when the queue is full."""
        size = captured.kept_bytes
        if (len(self._pending) >= self._max_pending
                or self._pending_bytes + size > self._max_pending_bytes):
            self.dropped += 1
            now = time.monotonic()
            if now - self._warned_at >= _WARN_EVERY_S:
                self._warned_at = now
                log.warning("request log queue full: %d log(s) dropped so far", self.dropped)
            return False
        self._pending.append(captured)
        self._pending_bytes += size
        self._wake.set()
        return True

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def run(self) -> None:
        """Write what is queued, batch by batch, until cancelled. A batch being written when
        the task is cancelled is finished by `close()`."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                self._inflight = asyncio.ensure_future(self._write(self._take()))
                await asyncio.shield(self._inflight)

    async def close(self) -> None:
        """Finish the batch in flight and write everything still queued (at shutdown)."""
        if self._inflight is not None:
            await self._inflight
        while self._pending:
            await self._write(self._take())

    def _take(self) -> list[Captured]:
        return [self._pending.popleft() for _ in range(min(self._batch, len(self._pending)))]

    async def _write(self, batch: list[Captured]) -> None:
        try:
            rows = await asyncio.to_thread(sealed_rows, batch, self.sealer)
            await self.db.run(write_logs, rows)
            self.written += len(rows)
        except Exception:
            self.failed += len(batch)
            log.exception("could not write %d request log(s)", len(batch))
        finally:
            self._pending_bytes -= sum(c.kept_bytes for c in batch)

