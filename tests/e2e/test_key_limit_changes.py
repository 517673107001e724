"""Changing a key's spend limit through HTTP, on SQLite and PostgreSQL: raised, lowered while
the server holds a lease of the limit, lowered under what was spent, moved to another period
and removed — after each change (within the key cache's 2 s) /v1 refuses at exactly the new
limit with `api_key_spend_limit_exceeded`. Members change only their own keys; every change is
in the audit trail; the ledger verifies clean."""

from __future__ import annotations

import time
from typing import Any

import httpx2
import orjson

from faregate.kit.money import nano_to_usd
from faregate.ledger.transfers import grant
from faregate.pricing.cost import Price, cost, output_bound
from faregate.tiers.service import set_override
from tests.e2e.api_client import ApiClient, invited_member, verified_owner, verified_user
from tests.harness import Deployment

CHAT = {"model": "faregate-dev", "max_tokens": 8,
        "messages": [{"role": "user", "content": "hello"}]}
BODY = orjson.dumps(CHAT)
DEV_PRICE = Price(500_000_000, 250_000_000, 1_500_000_000)  # catalog/devmodels.py
# A request is refused once the limit has less left than its prompt bound (one token per byte
# of the body) plus the smallest output reservation (one token and the 10 % margin).
SMALLEST = cost(DEV_PRICE, len(BODY), 0, output_bound(1, 1, 10))
# A key cache shorter than the default 2 s, so that the server still holds its lease of the
# limit (returned after 2 s idle) when it sees a change: the case where exactness is hard.
KEY_CACHE = {"FAREGATE_KEY_CACHE_TTL_S": "0.5"}
CACHE_S = 0.6


def _chat(http: httpx2.Client, key: str) -> httpx2.Response:
    return http.post("/v1/chat/completions", content=BODY,
                     headers={"Authorization": f"Bearer {key}",
                              "Content-Type": "application/json"})


def _spend_until_refused(http: httpx2.Client, key: str) -> tuple[int, dict[str, Any]]:
    """Sequential requests until the first refusal: (requests served, the refusal)."""
    for served in range(500):
        r = _chat(http, key)
        if r.status_code != 200:
            assert r.status_code == 429, r.text
            assert r.headers["x-should-retry"] == "false"
            return served, dict(r.json()["error"])
    raise AssertionError("the limit never bit")


def _limit(c: ApiClient, org: str, key_id: str) -> dict[str, Any]:
    r = c.get(f"/api/orgs/{org}/keys/{key_id}")
    assert r.status_code == 200, r.text
    return dict(r.json()["spend_limit"])


def _refused_exactly_at(c: ApiClient, http: httpx2.Client, org: str, key_id: str, key: str,
                        limit_usd: str, limit_nano: int) -> int:
    """Spend until refused; the refusal names the limit and comes with less than the smallest
    request's reservation left below it. Returns what the period's account has spent."""
    _, error = _spend_until_refused(http, key)
    assert error["type"] == "insufficient_quota"
    assert error["code"] == "api_key_spend_limit_exceeded"
    assert f"spend limit of ${limit_usd};" in error["message"]
    now = _limit(c, org, key_id)
    assert now["amount_nano_usd"] == limit_nano
    spent = int(now["spent_nano_usd"])
    assert limit_nano - SMALLEST < spent <= limit_nano, (spent, limit_nano)
    return spent


def test_changing_a_keys_limit(any_dep: Deployment) -> None:
    dep = any_dep
    base = dep.start_server(**KEY_CACHE).base_url
    owner, org = verified_owner(dep, base)
    with dep.engine.begin() as conn:
        grant(conn, org, 10 * 10**9, actor="test", reason="test")
        set_override(conn, org, 100)  # Unlimited: these many calls are not about RPM
    made = owner.post(f"/api/orgs/{org}/keys", {"name": "capped", "spend_limit_usd": "0.0002",
                                                "spend_limit_period": "day"})
    assert made.status_code == 201, made.text
    key_id, key = made.json()["id"], made.json()["key"]
    http = httpx2.Client(base_url=base, timeout=30.0)
    try:
        _refused_exactly_at(owner, http, org, key_id, key, "0.0002", 200_000)

        # Raised (a decimal string): the same period's account grows to the new limit.
        r = owner.patch(f"/api/orgs/{org}/keys/{key_id}", {"spend_limit_usd": "0.0004"})
        assert r.status_code == 200, r.text
        assert r.json()["spend_limit"]["amount_usd"] == "0.0004"
        assert r.json()["spend_limit"]["period"] == "day"
        time.sleep(CACHE_S)
        spent = _refused_exactly_at(owner, http, org, key_id, key, "0.0004", 400_000)

        # Raised a lot, then lowered while the server leases part of the limit (a JSON number).
        assert owner.patch(f"/api/orgs/{org}/keys/{key_id}",
                           {"spend_limit_usd": 1}).status_code == 200
        time.sleep(CACHE_S)
        for _ in range(3):
            assert _chat(http, key).status_code == 200
        held = dep.query("SELECT held_nano FROM accounts WHERE code LIKE :c",
                         c=f"key:{key_id}:day:%")[0][0]
        assert int(held) > 600_000, "the server should hold a lease of the limit"
        spent = int(_limit(owner, org, key_id)["spent_nano_usd"])
        lowered = spent + 300_000
        r = owner.patch(f"/api/orgs/{org}/keys/{key_id}",
                        {"spend_limit_usd": float(lowered) / 10**9})
        assert r.status_code == 200, r.text
        assert r.json()["spend_limit"]["amount_nano_usd"] == lowered
        time.sleep(CACHE_S)
        spent = _refused_exactly_at(owner, http, org, key_id, key, nano_to_usd(lowered),
                                    lowered)

        # Lowered under what was spent: refused at once, nothing more charged.
        assert owner.patch(f"/api/orgs/{org}/keys/{key_id}",
                           {"spend_limit_usd": "0.0001"}).status_code == 200
        time.sleep(CACHE_S)
        served, error = _spend_until_refused(http, key)
        assert served == 0 and "spend limit of $0.0001;" in error["message"]
        assert int(_limit(owner, org, key_id)["spent_nano_usd"]) == spent

        # Another period: its own account, counted from the change.
        r = owner.patch(f"/api/orgs/{org}/keys/{key_id}",
                        {"spend_limit_usd": "0.0003", "spend_limit_period": "month"})
        assert r.status_code == 200 and r.json()["spend_limit"]["period"] == "month"
        assert r.json()["spend_limit"]["spent_nano_usd"] == 0
        time.sleep(CACHE_S)
        _refused_exactly_at(owner, http, org, key_id, key, "0.0003", 300_000)
        r = owner.patch(f"/api/orgs/{org}/keys/{key_id}", {"spend_limit_period": "week"})
        assert r.json()["spend_limit"]["amount_usd"] == "0.0003"
        assert r.json()["spend_limit"]["period"] == "week"

        # Removed: the key spends from the balance alone.
        r = owner.patch(f"/api/orgs/{org}/keys/{key_id}", {"spend_limit_usd": None})
        assert r.status_code == 200 and r.json()["spend_limit"] is None
        time.sleep(CACHE_S)
        for _ in range(20):
            assert _chat(http, key).status_code == 200
    finally:
        http.close()

    # Refusals name the field; nothing changes.
    for body, param in [({"spend_limit_usd": "abc"}, "spend_limit_usd"),
                        ({"spend_limit_usd": 0}, "spend_limit_usd"),
                        ({"spend_limit_usd": "-1"}, "spend_limit_usd"),
                        ({"spend_limit_usd": "0.0000000001"}, "spend_limit_usd"),
                        ({"spend_limit_period": "month"}, "spend_limit_usd"),
                        ({"spend_limit_usd": "1"}, "spend_limit_period")]:
        r = owner.patch(f"/api/orgs/{org}/keys/{key_id}", body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["param"] == param, (body, r.text)
    assert owner.patch(f"/api/orgs/{org}/keys/{key_id}", {}).status_code == 400
    assert owner.patch(f"/api/orgs/{org}/keys/{key_id}",
                       {"spend_limit_usd": True}).status_code == 400
    admin = owner.post(f"/api/orgs/{org}/keys", {"name": "adm", "kind": "admin"}).json()
    r = owner.patch(f"/api/orgs/{org}/keys/{admin['id']}",
                    {"spend_limit_usd": "1", "spend_limit_period": "day"})
    assert r.status_code == 400

    # Every change is in the audit trail, with the limit before and after.
    events = [e for e in owner.get(f"/api/orgs/{org}/audit").json()["data"]
              if e["action"] == "api_key.spend_limit_changed"]
    assert len(events) == 7
    oldest = events[-1]
    assert oldest["target"] == key_id and oldest["actor"].startswith("user:")
    assert oldest["detail"]["before"] == {"spend_limit_usd": "0.0002",
                                          "spend_limit_period": "day"}
    assert oldest["detail"]["after"] == {"spend_limit_usd": "0.0004",
                                         "spend_limit_period": "day"}
    assert events[0]["detail"]["after"] == {"spend_limit_usd": None, "spend_limit_period": None}

    dep.stop_all_servers()
    assert dep.verify() == []
    held = dep.query("SELECT COALESCE(SUM(held_nano), 0) FROM accounts")[0][0]
    assert int(held) == 0


def test_members_change_only_their_own_keys(sqlite_dep: Deployment) -> None:
    dep = sqlite_dep
    base = dep.start_server().base_url
    owner, org = verified_owner(dep, base)
    member = invited_member(dep, owner, org)
    owners_key = owner.post(f"/api/orgs/{org}/keys", {"name": "owner's"}).json()["id"]
    members_key = member.post(f"/api/orgs/{org}/keys", {"name": "member's"}).json()["id"]

    for body in ({"spend_limit_usd": "5", "spend_limit_period": "day"}, {"name": "taken"}):
        r = member.patch(f"/api/orgs/{org}/keys/{owners_key}", body)
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "owner_required"
    r = member.patch(f"/api/orgs/{org}/keys/{members_key}",
                     {"spend_limit_usd": "5", "spend_limit_period": "day", "name": "mine"})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "mine" and r.json()["spend_limit"]["amount_usd"] == "5"
    r = owner.patch(f"/api/orgs/{org}/keys/{members_key}", {"spend_limit_usd": "2.5"})
    assert r.status_code == 200 and r.json()["spend_limit"]["amount_usd"] == "2.5"
    outsider = verified_user(dep, base)
    r = outsider.patch(f"/api/orgs/{org}/keys/{members_key}", {"spend_limit_usd": "9"})
    assert r.status_code == 404

    keys = {k["id"]: k for k in owner.get(f"/api/orgs/{org}/keys").json()["data"]}
    assert keys[owners_key]["name"] == "owner's" and keys[owners_key]["spend_limit"] is None
    assert keys[members_key]["spend_limit"]["amount_usd"] == "2.5"
