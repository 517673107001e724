"""A small Server-Sent Events client for tests, on a plain socket: every read has a deadline,
so a test waits a bounded time for an event and never hangs, and closing is immediate."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson


@dataclass
class Event:
    event: str = "message"
    data: str = ""
    id: str | None = None
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.data)


class SseStream:
    """GET `path` and read its event stream (HTTP/1.1, chunked)."""

    def __init__(self, base_url: str, path: str, *, cookies: dict[str, str] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        url = urlsplit(base_url)
        self.sock = socket.create_connection((url.hostname or "127.0.0.1", url.port or 80),
                                             timeout=10)
        lines = [f"GET {path} HTTP/1.1", f"Host: {url.netloc}", "Accept: text/event-stream"]
        if cookies:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in cookies.items()))
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self._raw = b""
        self._body = b""
        self.eof = False
        deadline = time.monotonic() + 10
        while b"\r\n\r\n" not in self._raw:
            if not self._recv(deadline):
                raise TimeoutError("no response headers")
        head, self._raw = self._raw.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {k.strip().lower(): v.strip() for k, v in
                        (h.split(":", 1) for h in header_lines)}
        self.chunked = self.headers.get("transfer-encoding") == "chunked"

    def _recv(self, deadline: float) -> bool:
        """Read once; False on timeout or end of stream."""
        remaining = deadline - time.monotonic()
        if remaining <= 0 or self.eof:
            return False
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        except OSError:
            data = b""
        if not data:
            self.eof = True
            return False
        self._raw += data
        return True

    def _decode(self) -> None:
        if not self.chunked:
            self._body += self._raw
            self._raw = b""
            return
        while b"\r\n" in self._raw:
            size_line, rest = self._raw.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                self.eof = True
                self._raw = b""
                return
            if len(rest) < size + 2:
                return
            self._body += rest[:size]
            self._raw = rest[size + 2:]

    def body(self, timeout_s: float = 10.0) -> bytes:
        """The rest of a finite body (an error answer)."""
        deadline = time.monotonic() + timeout_s
        while not self.eof and self._recv(deadline):
            pass
        self._decode()
        self._body += self._raw
        return self._body

    def next(self, timeout_s: float) -> Event | None:
        """The next event (comments attached to it); None if none came in time or the stream
        ended (then `eof` is set)."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._decode()
            text = self._body.replace(b"\r\n", b"\n")
            if b"\n\n" in text:
                block, rest = text.split(b"\n\n", 1)
                self._body = rest
                return _parse(block.decode())
            if self.eof or not self._recv(deadline):
                self._decode()
                return None

    def events(self, timeout_s: float, kind: str = "usage") -> list[Event]:
        """Every `kind` event that arrives within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        out: list[Event] = []
        while (ev := self.next(max(0.0, deadline - time.monotonic()))) is not None:
            if ev.event == kind:
                out.append(ev)
        return out

    def wait_for(self, timeout_s: float, predicate: Any) -> Event | None:
        """The first event matching `predicate` within `timeout_s`, else None."""
        deadline = time.monotonic() + timeout_s
        while (ev := self.next(max(0.0, deadline - time.monotonic()))) is not None:
            if predicate(ev):
                return ev
        return None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def _parse(block: str) -> Event:
    ev = Event()
    data: list[str] = []
    for line in block.split("\n"):
        if line.startswith(":"):
            ev.comments.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "event":
            ev.event = value
        elif name == "id":
            ev.id = value
    ev.data = "\n".join(data)
    if not data and ev.event == "message" and not ev.id:
        ev.event = "comment" if ev.comments else "other"
    return ev


async def sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The `data:` payloads of a `/v1` stream (one `data:` line per event, as OpenAI sends
    them) read from an async byte source such as aiohttp's `resp.content.iter_any()`."""
    buffer = b""
    async for piece in chunks:
        buffer += piece
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            yield event.removeprefix(b"data: ")


def chat_stream_request(key: str, model: str, prompt: str,
                        max_tokens: int = 20) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a streamed chat completion that asks for usage."""
    body = {"model": model, "stream": True, "max_tokens": max_tokens,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": prompt}]}
    return orjson.dumps(body), {"Authorization": f"Bearer {key}",
                                "Content-Type": "application/json"}
