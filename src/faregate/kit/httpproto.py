"""uvicorn's httptools protocol with two limits a public server needs (uvicorn has neither):

- a deadline for receiving each request, head and body (FAREGATE_REQUEST_READ_TIMEOUT_S): a
  client that dribbles bytes (slow-loris) or connects and sends nothing is disconnected;
- a cap on the size of a request head (FAREGATE_MAX_HEADER_BYTES): a bigger one gets 431.

The deadline starts when a connection opens or a request begins and ends when its body is in;
idle keep-alive connections are uvicorn's (timeout_keep_alive). A response being streamed is
not limited. `faregate serve` puts the settings in the environment for every worker."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

READ_TIMEOUT_ENV = "FAREGATE_REQUEST_READ_TIMEOUT_S"
HEADER_BYTES_ENV = "FAREGATE_MAX_HEADER_BYTES"

_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; "
              b"charset=utf-8\r\nconnection: close\r\ncontent-length: 33\r\n\r\n"
              b"Request header fields too large.\n")
_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"connection: close\r\ncontent-length: 37\r\n\r\n"
            b"The request was not received in time.")


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    read_timeout_s = float(os.environ.get(READ_TIMEOUT_ENV, "30"))
    max_header_bytes = int(os.environ.get(HEADER_BYTES_ENV, str(64 * 1024)))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._head_bytes: int | None = 0  # None while a body is being received
        self._tail = b""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_bytes is not None:
            # Count only the head: up to the blank line, if it is in this chunk (the body that
            # may follow it in the same chunk is not the head's).
            end = (self._tail + data).find(b"\r\n\r\n")
            self._head_bytes += len(data) if end < 0 else max(0, end + 4 - len(self._tail))
            self._tail = data[-3:]
            if self._head_bytes > self.max_header_bytes and not self.transport.is_closing():
                self._refuse(_TOO_LARGE)
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._head_bytes = None
        self._tail = b""
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._head_bytes = 0
        super().on_message_complete()

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.read_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete or not self.cycle.response_started:
            self._refuse(_TIMEOUT)
        else:  # the app already answers (a body still trickling in): just hang up
            self.transport.close()

    def _refuse(self, response: bytes) -> None:
        self._disarm()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.write(response)
        self.transport.close()
