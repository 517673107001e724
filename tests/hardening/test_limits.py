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

from faregate.identity.users import User
from tests.harness import Deployment, Proc, deployment

READ_TIMEOUT_S = 2
MAX_API_BODY = 4096
MAX_HEADER = 8192
V1_LIMIT = 65536


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, Proc]]:
    with deployment(tmp_path_factory.mktemp("limits") / "fg") as dep:
        server = dep.start_server(FAREGATE_REQUEST_READ_TIMEOUT_S=str(READ_TIMEOUT_S),
                                  FAREGATE_MAX_API_BODY_BYTES=str(MAX_API_BODY),
                                  FAREGATE_MAX_HEADER_BYTES=str(MAX_HEADER),
                                  FAREGATE_MAX_REQUEST_BODY_BYTES=str(V1_LIMIT))
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


CHAT = {"model": "faregate-dev", "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 5}


@pytest.fixture(scope="module")
def paying(served: tuple[Deployment, Proc]) -> tuple[User, str]:
    """A user with credit and a key, and the balance they start with."""
    dep, _ = served
    user = dep.new_user("limits@example.com", grant_nano=1_000_000_000)
    return user, dep.new_key(user)[1]


def _is_openai_413(body: dict[str, object], limit: int) -> None:
    assert body == {"error": {"message": f"Request body too large: the limit is {limit} bytes.",
                              "type": "invalid_request_error", "param": None,
                              "code": "request_too_large"}}


def test_declared_oversized_bodies_get_413(served: tuple[Deployment, Proc],
                                           paying: tuple[User, str]) -> None:
    dep, server = served
    user, key = paying
    before = dep.balance(user)[0]  # credits - debits (leases move the held part)
    r = httpx2.post(f"{server.base_url}/api/auth/signin", content=b"x" * (MAX_API_BODY + 1),
                    headers={"content-type": "application/json"}, timeout=10)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request_too_large"
    for auth in (f"Bearer {key}", "Bearer sk-nothing"):  # refused before authentication
        r = httpx2.post(f"{server.base_url}/v1/chat/completions", content=b"x" * (V1_LIMIT + 1),
                        headers={"content-type": "application/json", "authorization": auth},
                        timeout=10)
        assert r.status_code == 413
        _is_openai_413(r.json(), V1_LIMIT)
        assert r.headers["connection"] == "close"
        assert r.headers["x-request-id"].startswith("req_")
    # A declared length is refused from the head alone: the body is never sent.
    s = _conn(server)
    s.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: t\r\ncontent-type: application/json\r\n"
              b"authorization: Bearer " + key.encode() + b"\r\ncontent-length: 999999999\r\n\r\n")
    status, body = _status_and_json(_read_all(s))
    s.close()
    assert status == 413
    _is_openai_413(body, V1_LIMIT)
    assert dep.balance(user)[0] == before


def test_v1_chunked_body_past_the_limit_is_cut_off(served: tuple[Deployment, Proc],
                                                   paying: tuple[User, str]) -> None:
    dep, server = served
    user, key = paying
    before = dep.balance(user)[0]  # credits - debits (leases move the held part)
    s = _conn(server)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n"
              b"content-type: application/json\r\nauthorization: Bearer " + key.encode() +
              b"\r\ntransfer-encoding: chunked\r\n\r\n")
    sent = 0
    try:  # up to 16 times the limit; the server answers and hangs up long before
        for _ in range(V1_LIMIT * 16 // 4096):
            s.sendall(b"1000\r\n" + b"x" * 4096 + b"\r\n")
            sent += 4096
    except OSError:
        pass
    raw = _read_all(s)
    s.close()
    status, body = _status_and_json(raw)
    assert status == 413
    _is_openai_413(body, V1_LIMIT)
    assert b"\r\nconnection: close\r\n" in raw.lower()
    assert raw.count(b"HTTP/1.1 ") == 1  # one answer, then the connection closed
    assert dep.balance(user)[0] == before


def test_normal_requests_still_work(served: tuple[Deployment, Proc],
                                    paying: tuple[User, str]) -> None:
    dep, server = served
    user, key = paying
    before = dep.balance(user)[0]
    big = {**CHAT, "messages": [{"role": "user", "content": "y" * (V1_LIMIT // 2)}]}
    with httpx2.Client(base_url=server.base_url, timeout=30,
                       headers={"authorization": f"Bearer {key}"}) as http:
        for payload in (CHAT, big):
            r = http.post("/v1/chat/completions", json=payload)
            assert r.status_code == 200, r.text
        # the same body chunked (no Content-Length) is within the limit too
        r = http.post("/v1/chat/completions", content=iter([orjson.dumps(big)]),
                      headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text
        assert "content-length" not in r.request.headers
    assert dep.balance(user)[0] < before  # charged as usual


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


def test_a_v1_body_sent_a_byte_a_second_is_cut_off(served: tuple[Deployment, Proc],
                                                   paying: tuple[User, str]) -> None:
    dep, server = served
    user, key = paying
    before = dep.balance(user)[0]  # credits - debits (leases move the held part)
    s = _conn(server)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\ncontent-type: application/json"
              b"\r\nauthorization: Bearer " + key.encode() + b"\r\ncontent-length: 100\r\n\r\n{")
    raw = b""
    for _ in range(10):  # a byte a second: 100 bytes would take 100 s
        s.settimeout(1)
        try:
            raw = s.recv(4096)
            break  # answered (or closed)
        except TimeoutError:
            pass
        try:
            s.sendall(b" ")
        except OSError:
            break
    raw += _read_all(s, 5)
    s.close()
    assert raw.startswith(b"HTTP/1.1 408 "), raw[:200]
    assert dep.balance(user)[0] == before


def test_hsts_only_when_configured(served: tuple[Deployment, Proc],
                                   paying: tuple[User, str]) -> None:
    dep, plain = served
    _, key = paying
    auth = {"authorization": f"Bearer {key}"}
    assert "strict-transport-security" not in httpx2.get(f"{plain.base_url}/v1/models",
                                                         headers=auth, timeout=10).headers
    https = dep.start_server(FAREGATE_HSTS_MAX_AGE_S="31536000")
    try:
        for path in ("/healthz", "/api/me", "/signin", "/v1/models"):
            r = httpx2.get(f"{https.base_url}{path}", headers=auth, timeout=10)
            assert r.headers["strict-transport-security"] == \
                "max-age=31536000; includeSubDomains", path
            assert r.headers["x-content-type-options"] == "nosniff", path
    finally:
        https.stop()
        dep.procs.remove(https)
