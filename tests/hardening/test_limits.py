"""Hostile clients against a real server on loopback: oversized bodies (declared and chunked),
an oversized request head, a client that dribbles its request (slow-loris) or sends nothing;
security headers on every kind of response. Nothing here charges or corrupts anything: the
ledger verifies at the end."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import orjson
import pytest

from tests.harness import Deployment, Proc, deployment

READ_TIMEOUT_S = 2
MAX_API_BODY = 4096
MAX_HEADER = 8192


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, Proc]]:
    with deployment(tmp_path_factory.mktemp("limits") / "fg") as dep:
        server = dep.start_server(FAREGATE_REQUEST_READ_TIMEOUT_S=str(READ_TIMEOUT_S),
                                  FAREGATE_MAX_API_BODY_BYTES=str(MAX_API_BODY),
                                  FAREGATE_MAX_HEADER_BYTES=str(MAX_HEADER),
                                  FAREGATE_MAX_REQUEST_BODY_BYTES="65536")
        yield dep, server
        assert dep.verify() == []


def _conn(server: Proc) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    return s


def _read_all(s: socket.socket, timeout_s: float = 15) -> bytes:
    s.settimeout(timeout_s)
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        out += chunk
    return out


def _status_and_json(raw: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, orjson.loads(body) if body.startswith(b"{") else {}


def test_declared_oversized_bodies_get_413(served: tuple[Deployment, Proc]) -> None:
    _, server = served
    r = httpx2.post(f"{server.base_url}/api/auth/signin", content=b"x" * (MAX_API_BODY + 1),
                    headers={"content-type": "application/json"}, timeout=10)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request_too_large"
    r = httpx2.post(f"{server.base_url}/v1/chat/completions", content=b"x" * 70_000,
                    headers={"content-type": "application/json",
                             "authorization": "Bearer sk-nothing"}, timeout=10)
    assert r.status_code in (401, 413)  # unknown keys are refused before the body is read
    assert r.json()["error"]["code"] in ("invalid_api_key", "request_too_large")


def test_a_chunked_body_that_grows_too_big_is_cut_off(served: tuple[Deployment, Proc]) -> None:
    _, server = served
    s = _conn(server)
    s.sendall(b"POST /api/auth/signin HTTP/1.1\r\nHost: t\r\ncontent-type: application/json"
              b"\r\ntransfer-encoding: chunked\r\n\r\n")
    try:
        for _ in range(10):
            s.sendall(b"400\r\n" + b"x" * 1024 + b"\r\n")
    except OSError:
        pass  # the server may hang up while we still send
    raw = _read_all(s)
    s.close()
    status, body = _status_and_json(raw)
    assert status == 413 and body["error"]["code"] == "request_too_large"  # type: ignore[index]


def test_an_oversized_head_gets_431(served: tuple[Deployment, Proc]) -> None:
    _, server = served
    s = _conn(server)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        for i in range(40):
            s.sendall(f"x-filler-{i}: {'y' * 400}\r\n".encode())
    except OSError:
        pass
    raw = _read_all(s)
    s.close()
    assert raw.startswith(b"HTTP/1.1 431 ")


def test_slow_and_silent_clients_are_disconnected(served: tuple[Deployment, Proc]) -> None:
    _, server = served
    silent = _conn(server)
    slow = _conn(server)
    started = time.monotonic()
    slow.sendall(b"POST /api/auth/signin HTTP/1.1\r\nHost: t\r\ncontent-length: 200\r\n")
    closed = False
    for _ in range(40):  # a byte every 0.25 s: never finishes within the limit
        try:
            slow.sendall(b"x")
        except OSError:
            closed = True
            break
        slow.settimeout(0.25)
        try:
            if slow.recv(4096) is not None:
                closed = True
                break
        except TimeoutError:
            continue
    assert closed, "a slow-loris client was still connected after 10 s"
    assert time.monotonic() - started < 10
    assert _read_all(silent, 10) .startswith(b"HTTP/1.1 408 ")
    silent.close()
    slow.close()
    # Meanwhile the server serves everyone else.
    assert httpx2.get(f"{server.base_url}/healthz", timeout=10).status_code == 200


def test_security_headers_everywhere(served: tuple[Deployment, Proc], tmp_path: Path) -> None:
    _, server = served
    for path in ("/api/me", "/signin", "/healthz", "/v1/models"):
        r = httpx2.get(f"{server.base_url}{path}", timeout=10)
        assert r.headers["x-content-type-options"] == "nosniff", path
        if not path.startswith("/v1/"):
            assert r.headers["x-frame-options"] == "DENY", path
            assert "referrer-policy" in r.headers, path
    assert httpx2.get(f"{server.base_url}/api/me", timeout=10).headers[
        "cache-control"] == "no-store"
    assert "strict-transport-security" not in httpx2.get(f"{server.base_url}/healthz").headers
