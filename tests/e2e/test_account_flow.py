"""The whole self-service flow over HTTP, on SQLite and PostgreSQL: sign up, verify the email
from the outbox, verify a phone by the SMS code from the outbox, create a key, call /v1 with
the official SDK, revoke it — and every refusal on the way. Afterwards no password, SMS code,
email token or API key is found in the clear in the database or the server's log."""

from __future__ import annotations

import re
import time

import openai
import pytest
import sqlalchemy as sa

from faregate.ledger.transfers import grant
from tests.e2e.api_client import ApiClient, last_link_token, last_sms_code, outbox
from tests.harness import Deployment

PASSWORD = "correct horse battery staple 42"
ONE_DOLLAR = 1_000_000_000


def _dump_database(dep: Deployment) -> str:
    """Every value of every row of every table, as text."""
    out: list[str] = []
    with dep.engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                out.append(" ".join(str(v) for v in row))
    return "\n".join(out)


def test_the_whole_flow(any_dep: Deployment) -> None:
    server = any_dep.start_server(FAREGATE_LOG_LEVEL="debug")
    data = any_dep.data_dir
    web = ApiClient(server.base_url)
    email = "Ada.Lovelace@Example.COM "
    signed = web.signup(email, PASSWORD)
    assert signed["user"]["email"] == "ada.lovelace@example.com"
    me = web.get("/api/me").json()
    assert me["email_verified"] is False and me["phone"]["verified"] is False
    org = me["personal_organization_id"]

    # Email verification: the single-use link from the outbox.
    token = last_link_token(data, "ada.lovelace@example.com", "/verify-email")
    assert web.post("/api/auth/verify-email", {"token": token}).status_code == 200
    assert web.get("/api/me").json()["email_verified"] is True
    assert web.post("/api/auth/verify-email", {"token": token}).status_code == 400  # used

    # No key before the phone is verified.
    r = web.post(f"/api/orgs/{org}/keys", {"name": "first"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "phone_verification_required"

    # Phone: a landline is refused with a clear message; a mobile gets a code.
    r = web.post("/api/me/phone/code", {"phone": "+44 20 7946 0000"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "phone"
    r = web.post("/api/me/phone/code", {"phone": "138 0013 8000", "country": "CN"})
    assert r.status_code == 202, r.text
    assert r.json()["masked"].startswith("+86")
    r = web.post("/api/me/phone/code", {"phone": "+8613800138000"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0  # resend too soon
    code = last_sms_code(data, "+8613800138000")
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    r = web.post("/api/me/phone/verify", {"code": wrong})
    assert r.status_code == 400 and r.json()["error"]["code"] == "phone_code_invalid"
    r = web.post("/api/me/phone/verify", {"code": code})
    assert r.status_code == 200, r.text
    assert web.get("/api/me/phone").json()["verified"] is True

    # A key: shown once, redacted afterwards; CSRF is required to make one.
    bare = web.http.post(f"/api/orgs/{org}/keys", json={"name": "no csrf"})
    assert bare.status_code == 403 and bare.json()["error"]["code"] == "csrf_failed"
    r = web.post(f"/api/orgs/{org}/keys", {"name": "first", "spend_limit_usd": "1.50",
                                           "spend_limit_period": "month"})
    assert r.status_code == 201, r.text
    created = r.json()
    key, key_id = created["key"], created["id"]
    assert key.startswith("sk-fg-") and created["spend_limit"]["amount_usd"] == "1.5"
    listed = web.get(f"/api/orgs/{org}/keys").json()["data"]
    assert [k["id"] for k in listed] == [key_id] and "key" not in listed[0]
    assert listed[0]["redacted_value"] != key and key not in str(listed)

    # Call /v1 with the official SDK: refused without credit, served with it.
    client = openai.OpenAI(api_key=key, base_url=f"{server.base_url}/v1", max_retries=0)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="faregate-dev", max_tokens=5,
                                       messages=[{"role": "user", "content": "hi"}])
    with any_dep.engine.begin() as conn:
        grant(conn, org, 2 * ONE_DOLLAR, actor="test", reason="first credit")
    time.sleep(1.1)  # an exhausted account is rechecked after a second
    answer = client.chat.completions.create(model="faregate-dev", max_tokens=5,
                                            messages=[{"role": "user", "content": "hi"}])
    assert answer.usage is not None and answer.usage.completion_tokens > 0

    # Revoke: refused within the 2-second bound.
    assert web.delete(f"/api/orgs/{org}/keys/{key_id}").json()["status"] == "revoked"
    time.sleep(2.2)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()

    # Sign out ends the session on the server: the old cookie no longer works.
    old_cookie = web.http.cookies.get("fg_session")
    assert web.post("/api/auth/signout").status_code == 204
    replay = ApiClient(server.base_url)
    replay.http.cookies.set("fg_session", old_cookie or "")
    assert replay.get("/api/me").status_code == 401

    # Nothing secret in the clear: not in the database, not in the log.
    sms_codes = [m["text"] for m in outbox(data, "sms")]
    any_dep.stop_all_servers()
    haystacks = {"database": _dump_database(any_dep), "log": server.log.read_text()}
    for where, text in haystacks.items():
        assert PASSWORD not in text, where
        assert key not in text and key[len("sk-fg-"):] not in text, where
        # (a six-digit code could occur by chance inside a hex id or a timestamp's fraction)
        assert not re.search(rf"(?<![0-9a-fA-F.:]){code}(?![0-9a-fA-F])", text), where
        assert token not in text, where
        for sms in sms_codes:
            assert sms not in text, where
    assert "Ada.Lovelace" not in haystacks["database"]  # stored normalised
    assert any_dep.verify() == []
