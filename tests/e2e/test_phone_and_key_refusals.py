"""Every refusal of phone verification and key creation, through HTTP on SQLite and
PostgreSQL: wrong code five times, an expired code, resend too soon, a landline, a number
already serving three accounts, numbers from several countries, and an expired key."""

from __future__ import annotations

import datetime as dt
import itertools
import time

import openai
import pytest

from faregate.db.schema import phone_codes
from tests.e2e.api_client import ApiClient, last_link_token, last_sms_code
from tests.harness import Deployment

PASSWORD = "a long enough passphrase 9"
_emails = itertools.count()


def _signed_up(dep: Deployment, base: str) -> ApiClient:
    c = ApiClient(base)
    email = f"p{next(_emails)}@example.com"
    c.signup(email, PASSWORD)
    token = last_link_token(dep.data_dir, email, "/verify-email")
    assert c.post("/api/auth/verify-email", {"token": token}).status_code == 200
    return c


def _error(r: object) -> dict[str, object]:
    body = r.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}
    return dict(body["error"])


def test_phone_refusals(any_dep: Deployment) -> None:
    base = any_dep.start_server().base_url
    c = _signed_up(any_dep, base)

    # Numbers from several countries, as the policy says.
    cases = {
        "+44 20 7946 0000": "phone_landline",  # UK fixed line
        "+1 650 253 00": "phone_invalid_number",  # too short
        "+999 1234": "phone_invalid_country_code",
    }
    for number, code in cases.items():
        r = c.post("/api/me/phone/code", {"phone": number})
        assert r.status_code == 400, (number, r.text)
        err = _error(r)
        assert err["code"] == code and err["param"] == "phone" and err["message"]

    # Wrong code five times: the code is dead, even the right one is refused afterwards.
    assert c.post("/api/me/phone/code", {"phone": "+44 7400 123456"}).status_code == 202
    right = last_sms_code(any_dep.data_dir, "+447400123456")
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    for left in (4, 3, 2, 1):
        r = c.post("/api/me/phone/verify", {"code": wrong})
        assert r.status_code == 400 and f"{left} attempt" in str(_error(r)["message"])
    r = c.post("/api/me/phone/verify", {"code": wrong})
    assert _error(r)["code"] == "phone_code_attempts_exceeded"
    r = c.post("/api/me/phone/verify", {"code": right})
    assert r.status_code == 400 and _error(r)["code"] == "phone_code_attempts_exceeded"
    assert c.get("/api/me/phone").json()["verified"] is False

    # Resend too soon: 429 with Retry-After and a readable message.
    r = c.post("/api/me/phone/code", {"phone": "+44 7400 123456"})
    assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= 60
    assert "wait" in str(_error(r)["message"]).lower()

    # An expired code (ten minutes pass: moved in the database) is refused.
    d = _signed_up(any_dep, base)
    assert d.post("/api/me/phone/code", {"phone": "+1 650 253 0000"}).status_code == 202  # US
    code = last_sms_code(any_dep.data_dir, "+16502530000")
    with any_dep.engine.begin() as conn:
        conn.execute(phone_codes.update().where(phone_codes.c.phone_masked.like("+1%"))
                     .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    r = d.post("/api/me/phone/verify", {"code": code})
    assert r.status_code == 400 and _error(r)["code"] == "phone_code_expired"
    # (no key without a verified phone)
    me = d.get("/api/me").json()
    r = d.post(f"/api/orgs/{me['personal_organization_id']}/keys", {"name": "k"})
    assert r.status_code == 403 and _error(r)["code"] == "phone_verification_required"


def test_a_number_serves_at_most_three_accounts(any_dep: Deployment) -> None:
    base = any_dep.start_server().base_url
    number, e164 = "+86 138 0013 8000", "+8613800138000"
    for _ in range(3):
        c = _signed_up(any_dep, base)
        assert c.post("/api/me/phone/code", {"phone": number}).status_code == 202
        code = last_sms_code(any_dep.data_dir, e164)
        assert c.post("/api/me/phone/verify", {"code": code}).status_code == 200
    fourth = _signed_up(any_dep, base)
    r = fourth.post("/api/me/phone/code", {"phone": number})
    assert r.status_code == 400 and _error(r)["code"] == "phone_in_use"


def test_expired_and_limited_keys_made_through_the_api(any_dep: Deployment) -> None:
    base = any_dep.start_server().base_url
    c = _signed_up(any_dep, base)
    assert c.post("/api/me/phone/code", {"phone": "+44 7400 123457"}).status_code == 202
    code = last_sms_code(any_dep.data_dir, "+447400123457")
    assert c.post("/api/me/phone/verify", {"code": code}).status_code == 200
    org = c.get("/api/me").json()["personal_organization_id"]
    for bad, param in [({"name": "x", "expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
                       ({"name": "x", "spend_limit_usd": "ten", "spend_limit_period": "day"},
                        "spend_limit_usd"),
                       ({"name": "x", "spend_limit_usd": "1"}, "spend_limit_period"),
                       ({"name": "x", "permissions": "restricted"}, "scopes"),
                       ({"name": "x", "permissions": "restricted", "scopes": ["nope"]},
                        "scopes"),
                       ({"name": "x", "project_id": "proj_nope"}, "project_id")]:
        r = c.post(f"/api/orgs/{org}/keys", bad)
        assert r.status_code in (400, 404), (bad, r.text)
        assert _error(r)["param"] == param, (bad, r.text)
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)).isoformat()
    made = c.post(f"/api/orgs/{org}/keys", {"name": "short", "expires_at": soon}).json()
    client = openai.OpenAI(api_key=made["key"], base_url=f"{base}/v1", max_retries=0)
    assert client.models.list().data
    time.sleep(3.2)
    with pytest.raises(openai.AuthenticationError) as info:
        client.models.list()
    assert info.value.code == "api_key_expired"
    assert c.get(f"/api/orgs/{org}/keys/{made['id']}").json()["status"] == "expired"
