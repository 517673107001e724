"""A browser-like client of the /api JSON API: keeps cookies and echoes the CSRF cookie in
the X-CSRF-Token header of every state-changing request, as the dashboard's script does."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx2

_SAFE = {"GET", "HEAD", "OPTIONS"}


class ApiClient:
    def __init__(self, base_url: str, *, csrf: bool = True) -> None:
        self.http = httpx2.Client(base_url=base_url, timeout=30.0)
        self.csrf = csrf

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> httpx2.Response:
        hdrs = dict(headers or {})
        if method not in _SAFE and self.csrf:
            token = self.http.cookies.get("fg_csrf")
            if token is None:
                token = self.http.get("/api/auth/csrf").json()["csrf_token"]
            hdrs.setdefault("X-CSRF-Token", token)
        return self.http.request(method, path, json=body, headers=hdrs)

    def get(self, path: str) -> httpx2.Response:
        return self.request("GET", path)

    def post(self, path: str, body: Any = None, **kw: Any) -> httpx2.Response:
        return self.request("POST", path, body, **kw)

    def put(self, path: str, body: Any = None) -> httpx2.Response:
        return self.request("PUT", path, body)

    def patch(self, path: str, body: Any = None) -> httpx2.Response:
        return self.request("PATCH", path, body)

    def delete(self, path: str) -> httpx2.Response:
        return self.request("DELETE", path)

    def signup(self, email: str, password: str) -> dict[str, Any]:
        r = self.post("/api/auth/signup", {"email": email, "password": password})
        assert r.status_code == 201, r.text
        return dict(r.json())

    def close(self) -> None:
        self.http.close()


def outbox(data_dir: Path, kind: str) -> list[dict[str, Any]]:
    path = data_dir / "outbox" / f"{kind}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def last_link_token(data_dir: Path, to: str, path_part: str) -> str:
    """The token of the newest emailed link to `to` whose URL contains `path_part`."""
    for mail in reversed(outbox(data_dir, "email")):
        if mail["to"] == to:
            m = re.search(re.escape(path_part) + r"\?token=([A-Za-z0-9_\-]+)", mail["text"])
            if m:
                return m.group(1)
    raise AssertionError(f"no {path_part} link emailed to {to}")


def last_sms_code(data_dir: Path, to_e164: str) -> str:
    for sms in reversed(outbox(data_dir, "sms")):
        if sms["to"] == to_e164:
            m = re.search(r"\b(\d{6})\b", sms["text"])
            assert m, sms
            return m.group(1)
    raise AssertionError(f"no SMS to {to_e164}")
