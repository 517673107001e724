"""Browser-like clients of the JSON APIs, and users made through them as a person makes one.

`CsrfClient` keeps cookies and echoes a CSRF cookie in the X-CSRF-Token header of every
state-changing request, as the dashboard's and the console's scripts do; `ApiClient` is the
dashboard's (/api, fg_csrf). `verified_user`, `verified_owner` and `invited_member` sign people
up through /api with the emailed link and the texted code read from the outbox."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any, ClassVar

import httpx2

from tests.harness import Deployment

_SAFE = {"GET", "HEAD", "OPTIONS"}
PASSWORD = "a long enough passphrase 3"


class CsrfClient:
    """A cookie-keeping client that sends the `csrf_cookie` cookie's value (fetched from
    `csrf_path` when there is none yet) in X-CSRF-Token with every state-changing request,
    unless `csrf` is false (for the client, or for one request)."""

    csrf_cookie: ClassVar[str]
    csrf_path: ClassVar[str]

    def __init__(self, base_url: str, *, csrf: bool = True,
                 headers: dict[str, str] | None = None) -> None:
        self.http = httpx2.Client(base_url=base_url, timeout=30.0, headers=headers)
        self.csrf = csrf

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None, *,
                csrf: bool | None = None) -> httpx2.Response:
        sent = httpx2.Headers(headers)
        if method not in _SAFE and (self.csrf if csrf is None else csrf):
            token = self.http.cookies.get(self.csrf_cookie)
            if token is None:
                token = self.http.get(self.csrf_path).json()["csrf_token"]
            sent.setdefault("X-CSRF-Token", token)
        return self.http.request(method, path, json=body, headers=sent)

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

    def close(self) -> None:
        self.http.close()


class ApiClient(CsrfClient):
    """The dashboard's client of /api."""

    csrf_cookie = "fg_csrf"
    csrf_path = "/api/auth/csrf"

    def signup(self, email: str, password: str) -> dict[str, Any]:
        r = self.post("/api/auth/signup", {"email": email, "password": password})
        assert r.status_code == 201, r.text
        return dict(r.json())


_people = itertools.count()


def verified_user(dep: Deployment, base: str, email: str | None = None, *,
                  password: str = PASSWORD, phone: bool = True,
                  headers: dict[str, str] | None = None) -> ApiClient:
    """A user signed up through /api (with a fresh address unless given one), who opened the
    emailed link and, unless `phone` is false, verified a phone number of their own by the
    texted code: what creating keys and paying need. `headers` go with every request (say,
    X-Forwarded-For behind a trusted proxy)."""
    n = next(_people)
    email = email or f"person{n}@example.com"
    c = ApiClient(base, headers=headers)
    c.signup(email, password)
    token = last_link_token(dep.data_dir, email, "/verify-email")
    assert c.post("/api/auth/verify-email", {"token": token}).status_code == 200
    if phone:
        number = f"+447400{900_000 + n % 100_000}"  # a UK mobile no other test uses
        assert c.post("/api/me/phone/code", {"phone": number}).status_code == 202
        code = last_sms_code(dep.data_dir, number)
        assert c.post("/api/me/phone/verify", {"code": code}).status_code == 200
    return c


def verified_owner(dep: Deployment, base: str, email: str | None = None,
                   **kw: Any) -> tuple[ApiClient, str]:
    """A `verified_user` and the id of their personal organization, which they own."""
    c = verified_user(dep, base, email, **kw)
    return c, str(c.get("/api/me").json()["personal_organization_id"])


def invited_member(dep: Deployment, owner: ApiClient, org: str, email: str | None = None,
                   **kw: Any) -> ApiClient:
    """A `verified_user` whom `owner` invited to `org` and who accepted by the emailed link."""
    email = email or f"member{next(_people)}@example.com"
    r = owner.post(f"/api/orgs/{org}/invitations", {"email": email})
    assert r.status_code == 201, r.text
    member = verified_user(dep, str(owner.http.base_url), email, **kw)
    token = last_link_token(dep.data_dir, email, "/invitations/accept")
    assert member.post("/api/invitations/accept", {"token": token}).status_code == 200
    return member


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
