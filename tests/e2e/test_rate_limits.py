"""Usage tiers and RPM/TPM limits through real servers: a tier-1 key over its RPM gets 429
rate_limit_exceeded with OpenAI's headers and the official SDK's retry waits as told; with Redis
two servers on one database share the limit; a top-up raises the automatic tier, and /v1 sees
the higher limits within the key cache's 2 s; the operator CLI sets and clears a tier."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from typing import Any

import httpx2
import openai
import sqlalchemy as sa

from faregate.identity.users import User
from tests.e2e.api_client import ApiClient, verified_owner
from tests.e2e.fixtures_gateway import ONE_DOLLAR
from tests.harness import Deployment

CHAT = {"model": "faregate-dev", "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 5}
HEADERS = ["x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
           "x-ratelimit-reset-requests", "x-ratelimit-limit-tokens",
           "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"]


def _run(dep: Deployment, sql: str, **params: object) -> None:
    with dep.engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def _tier_one(dep: Deployment, user: User, *, rpm: int, tpm: int = 1_000_000) -> None:
    """Give the organization the automatic tier 1 (no override) and tier 1 these limits."""
    _run(dep, "UPDATE usage_tiers SET rpm = :rpm, tpm = :tpm WHERE tier = 1", rpm=rpm, tpm=tpm)
    _run(dep, "UPDATE organizations SET tier = 1, tier_override = NULL WHERE id = :o",
              o=user.organization_id)


def _post(base: str, key: str, body: dict[str, Any] = CHAT) -> httpx2.Response:
    return httpx2.post(f"{base}/v1/chat/completions", json=body, timeout=30,
                       headers={"Authorization": f"Bearer {key}"})


def _cli(dep: Deployment, *args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "faregate.cli", *args, "--json"],
                          env=dep.env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def test_tier_one_key_over_its_rpm_gets_429_and_the_sdk_waits(sqlite_dep: Deployment) -> None:
    dep = sqlite_dep
    user = dep.new_user("tier1@example.com", ONE_DOLLAR)
    _, key = dep.new_key(user)
    _tier_one(dep, user, rpm=12)  # one request refills every 5 s
    base = dep.start_server().base_url

    first = _post(base, key)
    assert first.status_code == 200, first.text
    assert all(h in first.headers for h in HEADERS), first.headers
    assert first.headers["x-ratelimit-limit-requests"] == "12"
    assert first.headers["x-ratelimit-remaining-requests"] == "11"
    assert first.headers["x-ratelimit-limit-tokens"] == "1000000"
    assert int(first.headers["x-ratelimit-remaining-tokens"]) < 1_000_000
    assert first.headers["x-ratelimit-reset-requests"].endswith("s")
    for _ in range(11):
        assert _post(base, key).status_code == 200
    refused = _post(base, key)
    assert refused.status_code == 429, refused.text
    error = refused.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "requests"
    assert "on requests per min (RPM): Limit 12, Used 12, Requested 1" in error["message"]
    assert user.organization_id in error["message"]
    assert all(h in refused.headers for h in HEADERS)
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(refused.headers["retry-after"]) <= 5
    assert 0 < int(refused.headers["retry-after-ms"]) <= 5000
    assert refused.headers["x-request-id"].startswith("req_")

    # The official SDK retries the 429 after Retry-After and then succeeds.
    client = openai.OpenAI(api_key=key, base_url=f"{base}/v1", max_retries=2, timeout=30)
    raw = client.chat.completions.with_raw_response.create(
        model="faregate-dev", messages=[{"role": "user", "content": "hi"}], max_tokens=5)
    assert raw.retries_taken >= 1
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-ratelimit-limit-requests"] == "12"

    # A request larger than the whole TPM is refused for good (the SDK does not retry it).
    _run(dep, "UPDATE usage_tiers SET tpm = 100, updated_at = :t WHERE tier = 1",
              t=dt.datetime.now(dt.UTC))
    deadline = time.monotonic() + 10
    while True:
        big = _post(base, key, {**CHAT, "max_tokens": 500})
        if (big.status_code == 429 and big.json()["error"]["type"] == "tokens") \
                or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert big.status_code == 429 and big.json()["error"]["type"] == "tokens", big.text
    assert big.json()["error"]["code"] == "rate_limit_exceeded"
    assert big.headers["x-should-retry"] == "false"
    assert dep.verify() == []


def test_two_servers_share_the_limit_through_redis(pg_dep: Deployment, redis_url: str) -> None:
    dep = pg_dep
    user = dep.new_user("shared@example.com", ONE_DOLLAR)
    _, key = dep.new_key(user)
    _tier_one(dep, user, rpm=5)
    servers = [dep.start_server(FAREGATE_REDIS_URL=redis_url) for _ in range(2)]
    codes = [_post(servers[i % 2].base_url, key).status_code for i in range(10)]
    assert sorted(codes) == [200] * 5 + [429] * 5, codes
    assert codes[:5] == [200] * 5
    assert dep.verify() == []


def test_unlimited_organizations_get_no_limits_and_the_cli_sets_tiers(
        sqlite_dep: Deployment) -> None:
    dep = sqlite_dep
    user = dep.new_user("operator-made@example.com", ONE_DOLLAR)  # Unlimited, by the CLI
    key_id, key = dep.new_key(user)
    _run(dep, "UPDATE usage_tiers SET rpm = 2 WHERE tier = 1")
    base = dep.start_server().base_url
    for _ in range(4):
        r = _post(base, key)
        assert r.status_code == 200 and "x-ratelimit-limit-requests" not in r.headers

    assert _cli(dep, "orgs", "set-tier", user.email, "1")["tier"] == 1
    listed = {t["tier"]: t for t in _cli(dep, "tiers", "list")["data"]}
    assert listed[1]["rpm"] == 2 and listed[100]["rpm"] is None
    assert _cli(dep, "keys", "set-rate-limit", key_id, "--rpm", "1")["rpm_limit"] == 1
    codes = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the key cache picks the change up within 2 s
        r = _post(base, key)
        codes.append(r.status_code)
        if r.status_code == 429:
            break
        time.sleep(0.3)
    assert codes[-1] == 429, codes
    assert r.headers["x-ratelimit-limit-requests"] == "1"  # the key's own, the tighter
    assert "for API key" in r.json()["error"]["message"]
    after = _cli(dep, "orgs", "set-tier", user.email, "--auto")
    assert after["tier_override"] is None and after["tier"] == 0
    actions = [a for (a,) in dep.query("SELECT action FROM audit_events ORDER BY id")]
    assert {"organization.tier_set", "api_key.rate_limits_set"} <= set(actions)


def _card(c: ApiClient, org: str) -> None:
    year = dt.date.today().year + 3
    token = c.http.post("/sandbox/v1/payment_methods", json={
        "number": "4242424242424242", "exp_month": 12, "exp_year": year, "cvc": "737",
        "postal_code": "94107",
        "billing": {"name": "Ada Lovelace", "line1": "1 Main St", "city": "San Francisco",
                    "state": "CA", "postal_code": "94107", "country": "US"}})
    assert token.status_code == 200, token.text
    r = c.post(f"/api/orgs/{org}/payment-methods", {"payment_method_id": token.json()["id"]})
    assert r.status_code == 201, r.text


def test_a_top_up_raises_the_tier(sqlite_dep: Deployment) -> None:
    dep = sqlite_dep
    base = dep.start_server().base_url
    c, org = verified_owner(dep, base)
    key = c.post(f"/api/orgs/{org}/keys", {"name": "k"})
    assert key.status_code == 201, key.text
    secret = key.json()["key"]
    assert dep.query("SELECT tier, tier_override FROM organizations WHERE id = :o",
                     o=org)[0] == (0, None)
    limits = c.get(f"/api/orgs/{org}/usage/tier").json()
    assert (limits["tier"], limits["rpm"], limits["tpm"]) == (0, 3, 40_000)
    assert limits["next_tiers"][0]["tier"] == 1
    before = _post(base, secret)  # no credit yet: refused, but counted and with headers
    assert before.status_code == 429
    assert before.headers["x-ratelimit-limit-requests"] == "3"  # the free tier

    _card(c, org)
    assert c.post(f"/api/orgs/{org}/top-ups", {"amount_usd": "5"}).status_code == 201
    assert dep.query("SELECT tier FROM organizations WHERE id = :o", o=org)[0][0] == 1
    assert c.get(f"/api/orgs/{org}/usage/tier").json()["rpm"] == 500
    deadline = time.monotonic() + 10
    while True:  # within the key cache's 2 s, /v1 applies tier 1's limits
        r = _post(base, secret)
        if r.headers.get("x-ratelimit-limit-requests") == "500" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert r.status_code == 200, r.text
    assert r.headers["x-ratelimit-limit-requests"] == "500"
