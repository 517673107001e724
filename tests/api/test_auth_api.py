"""/api/auth and /api/me over HTTP against a running server, on SQLite and PostgreSQL: CSRF,
sign-up, sign-in (generic refusal, throttling that counts failures, session rotation),
sign-out (the old cookie stops working), email verification, password reset and change.

One server per database serves the module. It trusts X-Forwarded-For from 127.0.0.1, so each
test comes from its own client address and the per-address limits do not leak between tests.
`Browser`, `site` and the helpers are shared with test_orgs_api."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa

from faregate.db.schema import email_tokens
from faregate.notify.email import read_outbox
from tests import services
from tests.e2e.api_client import ApiClient
from tests.harness import Deployment, Proc, deployment

PASSWORD = "correct horse battery staple"
LIMITS = {
    "FAREGATE_TRUSTED_PROXIES": '["127.0.0.1"]',
    "FAREGATE_SIGN_IN_ATTEMPTS_PER_ACCOUNT": "3",
    "FAREGATE_SIGN_IN_ATTEMPTS_PER_IP": "6",
    "FAREGATE_SIGN_UPS_PER_IP_PER_HOUR": "4",
    "FAREGATE_PASSWORD_RESETS_PER_ACCOUNT_PER_HOUR": "2",
    "FAREGATE_PASSWORD_RESETS_PER_IP_PER_HOUR": "4",
}
_addresses = itertools.count(1)
_emails = itertools.count(1)


@dataclass
class Site:
    dep: Deployment
    server: Proc

    def outbox(self, to: str) -> list[dict[str, Any]]:
        return [m for m in read_outbox(self.dep.data_dir / "outbox") if m["to"] == to]

    def link_token(self, to: str, path: str) -> str:
        """The token of the newest link to `path` emailed to `to` (waiting a little: a reset
        email is sent after the response)."""
        deadline = time.monotonic() + 10
        while True:
            for mail in reversed(self.outbox(to)):
                found = re.search(re.escape(path) + r"\?token=([A-Za-z0-9_-]+)",
                                  str(mail["text"]))
                if found:
                    return found.group(1)
            if time.monotonic() > deadline:
                raise AssertionError(f"no {path} link was emailed to {to}")
            time.sleep(0.05)

    def wait_outbox(self, to: str, count: int) -> list[dict[str, Any]]:
        """The emails to `to`, once there are `count` of them (then a moment more, so that
        an extra one would be seen)."""
        deadline = time.monotonic() + 10
        while len(self.outbox(to)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        return self.outbox(to)

    def audit(self, action: str) -> list[sa.Row[Any]]:
        return self.dep.query("SELECT * FROM audit_events WHERE action = :a ORDER BY id",
                              a=action)

    def expire_email_tokens(self) -> None:
        with self.dep.engine.begin() as conn:
            conn.execute(email_tokens.update().values(
                expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Site]:
    data_dir: Path = tmp_path_factory.mktemp(f"api-{request.param}") / "fg"
    if request.param == "sqlite":
        with deployment(data_dir) as dep:
            yield Site(dep, dep.start_server(**LIMITS))
        return
    admin_url = services.check_pg_admin_url()
    with services.database_factory(admin_url) as make, deployment(data_dir, make()) as dep:
        yield Site(dep, dep.start_server(**LIMITS))


def new_email() -> str:
    return f"user{next(_emails)}@example.com"


class Browser(ApiClient):
    """The dashboard's client (cookies, the fg_csrf cookie echoed in X-CSRF-Token) from its
    own address."""

    def __init__(self, site: Site) -> None:
        n = next(_addresses)
        self.site = site
        self.ip = f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"
        super().__init__(site.server.base_url, headers={"x-forwarded-for": self.ip})
        self.email = ""

    def signup(self, email: str | None = None, password: str = PASSWORD,
               verify: bool = False) -> dict[str, Any]:
        self.email = email or new_email()
        r = self.post("/api/auth/signup", {"email": self.email, "password": password})
        assert r.status_code == 201, r.text
        if verify:
            token = self.site.link_token(self.email, "/verify-email")
            assert self.post("/api/auth/verify-email", {"token": token}).status_code == 200
        return dict(r.json()["user"])

    def signin(self, email: str, password: str = PASSWORD) -> httpx2.Response:
        return self.post("/api/auth/signin", {"email": email, "password": password})

    @property
    def session_cookie(self) -> str:
        value = self.http.cookies.get("fg_session")
        assert value
        return str(value)


def with_cookie(site: Site, session: str) -> httpx2.Client:
    """A fresh client that presents only this session cookie."""
    return httpx2.Client(base_url=site.server.base_url, timeout=30.0,
                         cookies={"fg_session": session})


def error(r: httpx2.Response) -> dict[str, Any]:
    body = r.json()
    assert set(body) == {"error"}, body
    return dict(body["error"])


# --- CSRF -------------------------------------------------------------------------------------

def test_state_changing_requests_need_the_csrf_token(site: Site) -> None:
    web = Browser(site)
    body = {"email": new_email(), "password": PASSWORD}
    missing = web.post("/api/auth/signup", body, csrf=False)
    assert missing.status_code == 403
    assert error(missing)["code"] == "csrf_failed"
    token = web.get("/api/auth/csrf").json()["csrf_token"]
    assert web.http.cookies.get("fg_csrf") == token
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for headers in ({"x-csrf-token": "nonsense"}, {"x-csrf-token": forged},
                    {"x-csrf-token": token, "origin": "https://evil.example"}):
        refused = web.post("/api/auth/signup", body, csrf=False, headers=headers)
        assert refused.status_code == 403, headers
        assert error(refused)["code"] == "csrf_failed"
    ok = web.post("/api/auth/signup", body, csrf=False, headers={"x-csrf-token": token})
    assert ok.status_code == 201, ok.text
    # The anonymous token does not work for the new session; the one sign-up returned does.
    stale = web.post("/api/auth/signout", csrf=False, headers={"x-csrf-token": token})
    assert stale.status_code == 403
    fresh = ok.json()["csrf_token"]
    assert fresh != token
    assert web.http.cookies.get("fg_csrf") == fresh
    assert web.get("/api/me").status_code == 200
    done = web.post("/api/auth/signout", csrf=False, headers={"x-csrf-token": fresh})
    assert done.status_code == 204


# --- Sign-up, verification, sign-out ---------------------------------------------------------

def test_sign_up_verify_and_sign_out(site: Site) -> None:
    web = Browser(site)
    email = f"  New.{next(_emails)}@Example.COM "
    r = web.post("/api/auth/signup", {"email": email, "password": PASSWORD, "name": "Ada"})
    assert r.status_code == 201, r.text
    user = r.json()["user"]
    assert user["email"] == email.strip().lower()
    assert user["email_verified"] is False
    cookie = web.session_cookie
    me = web.get("/api/me").json()
    assert me["id"] == user["id"]
    assert me["phone"] == {"verified": False, "masked": None}
    assert me["organizations"] == [{"id": user["personal_organization_id"],
                                    "name": "Ada's organization", "role": "owner",
                                    "personal": True}]
    [mail] = site.outbox(user["email"])
    assert mail["subject"] == "Verify your email address for Faregate"
    token = site.link_token(user["email"], f"{site.server.base_url}/verify-email")
    verified = web.post("/api/auth/verify-email", {"token": token})
    assert verified.status_code == 200, verified.text
    assert verified.json() == {"email": user["email"], "email_verified": True}
    assert web.get("/api/me").json()["email_verified"] is True
    again = web.post("/api/auth/verify-email", {"token": token})
    assert again.status_code == 400
    assert error(again)["code"] == "token_used"
    assert web.post("/api/auth/verify-email/resend").status_code == 400  # already verified

    assert web.post("/api/auth/signout").status_code == 204
    assert web.get("/api/me").status_code == 401
    # The old cookie, replayed, is dead on the server, not just forgotten by the browser.
    with with_cookie(site, cookie) as replay:
        gone = replay.get("/api/me")
    assert gone.status_code == 401
    assert error(gone)["code"] == "not_signed_in"
    assert len(site.audit("auth.signed_out")) >= 1
    # No secret is stored in the clear.
    dump = " ".join(str(v) for table in ("users", "sessions", "email_tokens", "audit_events")
                    for row in site.dep.query(f"SELECT * FROM {table}") for v in row)
    for secret in (PASSWORD, token, cookie):
        assert secret not in dump


def test_sign_up_refusals(site: Site) -> None:
    web = Browser(site)
    email = new_email()
    weak = web.post("/api/auth/signup", {"email": email, "password": "password123"})
    assert weak.status_code == 400
    assert error(weak)["code"] == "weak_password"
    assert error(weak)["param"] == "password"
    assert "commonly used" in error(weak)["message"]
    short = web.post("/api/auth/signup", {"email": email, "password": "k7#Lm"})
    assert "at least 10 characters" in error(short)["message"]
    bad = web.post("/api/auth/signup", {"email": "nobody-at-example.com", "password": PASSWORD})
    assert bad.status_code == 400
    assert error(bad)["param"] == "email"
    assert "not a valid email address" in error(bad)["message"]
    extra = web.post("/api/auth/signup", {"email": email, "password": PASSWORD, "admin": True})
    assert extra.status_code == 400
    assert web.post("/api/auth/signup", {"email": email, "password": PASSWORD}
                    ).status_code == 201
    other = Browser(site)
    taken = other.post("/api/auth/signup", {"email": email.upper(), "password": PASSWORD})
    assert taken.status_code == 409
    assert error(taken)["message"] == ("An account with this email already exists. Sign in "
                                       "or reset your password.")


def test_sign_ups_are_throttled_per_address(site: Site) -> None:
    web = Browser(site)
    for _ in range(int(LIMITS["FAREGATE_SIGN_UPS_PER_IP_PER_HOUR"])):
        web.signup()
    throttled = web.post("/api/auth/signup", {"email": new_email(), "password": PASSWORD})
    assert throttled.status_code == 429
    assert "Too many sign-ups from your network" in error(throttled)["message"]
    assert int(throttled.headers["retry-after"]) > 0
    Browser(site).signup()  # another address is not affected


# --- Sign-in -----------------------------------------------------------------------------------

def test_sign_in_refuses_generically_and_counts_failures(site: Site) -> None:
    owner = Browser(site)
    email = new_email()
    owner.signup(email)
    attacker = Browser(site)
    wrong = attacker.signin(email, "not the password")
    unknown = attacker.signin(new_email(), PASSWORD)
    for r in (wrong, unknown):
        assert r.status_code == 401
        assert error(r) == {"message": "Incorrect email or password.",
                            "type": "invalid_request_error", "param": None,
                            "code": "invalid_credentials"}
    assert "fg_session" not in attacker.http.cookies
    failed_before = len(site.audit("auth.sign_in_failed"))
    second = Browser(site)  # failures from any address count against the account
    assert second.signin(email, "still not it").status_code == 401
    assert Browser(site).signin(email, "nor this").status_code == 401
    throttled = Browser(site).signin(email, PASSWORD)  # even the right password, for now
    assert throttled.status_code == 429
    assert error(throttled)["code"] == "rate_limit_exceeded"
    assert "Too many sign-in attempts for this account" in error(throttled)["message"]
    assert int(throttled.headers["retry-after"]) > 0
    # Every failure was committed although its response was an error.
    assert len(site.audit("auth.sign_in_failed")) == failed_before + 2
    bursts = [e for e in site.audit("auth.sign_in_burst")
              if e.organization_id == owner.get("/api/me").json()["personal_organization_id"]]
    assert len(bursts) == 1
    assert "not the password" not in " ".join(str(e.detail) for e in
                                              site.audit("auth.sign_in_failed"))


def test_sign_in_is_throttled_per_address(site: Site) -> None:
    web = Browser(site)
    for _ in range(int(LIMITS["FAREGATE_SIGN_IN_ATTEMPTS_PER_IP"])):
        assert web.signin(new_email(), PASSWORD).status_code == 401
    throttled = web.signin(new_email(), PASSWORD)
    assert throttled.status_code == 429
    assert "from your network" in error(throttled)["message"]


def test_sign_in_rotates_the_session(site: Site) -> None:
    web = Browser(site)
    email = new_email()
    web.signup(email)
    first = web.session_cookie
    r = web.signin(email)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["email"] == email
    second = web.session_cookie
    assert second != first
    assert r.json()["csrf_token"] == web.http.cookies.get("fg_csrf")
    with with_cookie(site, first) as old, with_cookie(site, second) as new:
        assert old.get("/api/me").status_code == 401
        assert new.get("/api/me").status_code == 200
    sessions = web.get("/api/me/sessions").json()["data"]
    assert [s["current"] for s in sessions] == [True]
    assert sessions[0]["ip"] == web.ip


def test_sessions_can_be_listed_and_ended(site: Site) -> None:
    laptop, phone = Browser(site), Browser(site)
    email = new_email()
    laptop.signup(email)
    assert phone.signin(email).status_code == 200
    listed = laptop.get("/api/me/sessions").json()["data"]
    assert len(listed) == 2
    other = next(s for s in listed if not s["current"])
    assert other["ip"] == phone.ip
    assert laptop.delete(f"/api/me/sessions/{other['id']}").status_code == 204
    assert phone.get("/api/me").status_code == 401
    assert laptop.get("/api/me").status_code == 200
    stranger = Browser(site)
    stranger.signup()
    current = next(s for s in listed if s["current"])
    assert stranger.delete(f"/api/me/sessions/{current['id']}").status_code == 404
    assert laptop.get("/api/me").status_code == 200


# --- Passwords ---------------------------------------------------------------------------------

def test_password_reset(site: Site) -> None:
    web = Browser(site)
    email = new_email()
    web.signup(email)
    other_device = Browser(site)
    assert other_device.signin(email).status_code == 200
    anonymous = Browser(site)
    known = anonymous.post("/api/auth/password-reset", {"email": email.upper()})
    unknown = anonymous.post("/api/auth/password-reset", {"email": new_email()})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    token = site.link_token(email, f"{site.server.base_url}/reset-password")

    weak = anonymous.post("/api/auth/password-reset/confirm",
                          {"token": token, "password": "1234567890"})
    assert weak.status_code == 400
    assert error(weak)["code"] == "weak_password"
    new_password = "a completely new passphrase"
    done = anonymous.post("/api/auth/password-reset/confirm",
                          {"token": token, "password": new_password})
    assert done.status_code == 204, done.text
    reused = anonymous.post("/api/auth/password-reset/confirm",
                            {"token": token, "password": "yet another passphrase"})
    assert reused.status_code == 400
    assert error(reused)["code"] == "token_used"
    # Every session ended; the old password is gone, the new one works.
    assert web.get("/api/me").status_code == 401
    assert other_device.get("/api/me").status_code == 401
    assert Browser(site).signin(email, PASSWORD).status_code == 401
    signed = Browser(site).signin(email, new_password)
    assert signed.status_code == 200
    assert signed.json()["user"]["email_verified"] is True
    assert site.audit("auth.password_reset")


def test_reset_link_expires(site: Site) -> None:
    web = Browser(site)
    email = new_email()
    web.signup(email)
    assert web.post("/api/auth/password-reset", {"email": email}).status_code == 202
    token = site.link_token(email, "/reset-password")
    site.expire_email_tokens()
    expired = web.post("/api/auth/password-reset/confirm",
                       {"token": token, "password": "a completely new passphrase"})
    assert expired.status_code == 400
    assert error(expired)["code"] == "token_expired"
    assert "expired" in error(expired)["message"]
    assert web.post("/api/auth/password-reset/confirm",
                    {"token": "made-up", "password": "a completely new passphrase"}
                    ).status_code == 400


def test_reset_requests_are_throttled(site: Site) -> None:
    web = Browser(site)
    email = new_email()
    web.signup(email)
    sent_before = len(site.outbox(email))
    for _ in range(3):  # the account's limit is 2 an hour: the third sends nothing
        assert web.post("/api/auth/password-reset", {"email": email}).status_code == 202
    assert len(site.wait_outbox(email, sent_before + 2)) == sent_before + 2
    assert web.post("/api/auth/password-reset", {"email": new_email()}).status_code == 202
    throttled = web.post("/api/auth/password-reset", {"email": new_email()})
    assert throttled.status_code == 429
    assert "password reset requests from your network" in error(throttled)["message"]
    assert int(throttled.headers["retry-after"]) > 0


def test_change_password(site: Site) -> None:
    web, other = Browser(site), Browser(site)
    email = new_email()
    web.signup(email)
    assert other.signin(email).status_code == 200
    wrong = web.post("/api/me/password", {"current_password": "not my password",
                                          "new_password": "a completely new passphrase"})
    assert wrong.status_code == 400
    assert error(wrong)["param"] == "current_password"
    weak = web.post("/api/me/password", {"current_password": PASSWORD,
                                         "new_password": "aaaaaaaaaaaa"})
    assert error(weak)["code"] == "weak_password"
    ok = web.post("/api/me/password", {"current_password": PASSWORD,
                                       "new_password": "a completely new passphrase"})
    assert ok.status_code == 204, ok.text
    assert web.get("/api/me").status_code == 200
    assert other.get("/api/me").status_code == 401
    assert site.outbox(email)[-1]["subject"] == "Your Faregate password was changed"
    assert Browser(site).signin(email, "a completely new passphrase").status_code == 200


def test_resending_the_verification_email(site: Site) -> None:
    web = Browser(site)
    assert web.post("/api/auth/verify-email/resend").status_code == 401
    email = new_email()
    web.signup(email)
    first = site.link_token(email, "/verify-email")
    for _ in range(2):
        assert web.post("/api/auth/verify-email/resend").status_code == 202
    throttled = web.post("/api/auth/verify-email/resend")
    assert throttled.status_code == 429
    assert len(site.outbox(email)) == 3
    superseded = web.post("/api/auth/verify-email", {"token": first})
    assert error(superseded)["code"] == "token_used"
    latest = site.link_token(email, "/verify-email")
    assert web.post("/api/auth/verify-email", {"token": latest}).status_code == 200


def test_the_api_is_documented(site: Site) -> None:
    spec = httpx2.get(f"{site.server.base_url}/openapi.json").json()
    paths = spec["paths"]
    for path, method in [("/api/auth/signup", "post"), ("/api/auth/signin", "post"),
                         ("/api/auth/signout", "post"), ("/api/auth/csrf", "get"),
                         ("/api/auth/verify-email", "post"),
                         ("/api/auth/password-reset/confirm", "post"), ("/api/me", "get"),
                         ("/api/me/password", "post"), ("/api/orgs/{org_id}", "patch"),
                         ("/api/orgs/{org_id}/invitations", "post"),
                         ("/api/invitations/accept", "post"),
                         ("/api/orgs/{org_id}/projects/{project_id}", "patch"),
                         ("/api/orgs/{org_id}/audit", "get")]:
        assert method in paths[path], path
    signup = paths["/api/auth/signup"]["post"]
    assert "201" in signup["responses"]
    assert "requestBody" in signup
    assert "204" in paths["/api/auth/signout"]["post"]["responses"]
