"""The operator console's users and organizations over HTTP against a real server: an admin
finds a user, reads the organization's overview, grants, adjusts and refunds credit,
deactivates the organization (the official SDK then gets 401 account_deactivated) and
reactivates it, deactivates and reactivates the user, resets their phone and issues codes; a
support operator adds a note and is refused everything else — and every action is in the audit
trail with actor, target and before/after, which the database will not let anyone change."""

from __future__ import annotations

import time
from collections.abc import Callable

import openai
import pytest
import sqlalchemy as sa

from tests.e2e.api_client import PASSWORD, ApiClient, verified_owner
from tests.e2e.operator_client import OperatorClient, create_operator
from tests.e2e.test_billing_flow import _bind
from tests.e2e.test_refunds_and_codes import _payment
from tests.harness import Deployment

WAIT_S = 10.0  # the key cache lives 2 s; this only bounds a broken build


def _eventually(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, "not within the bounded wait"
        time.sleep(0.2)


def _deactivated(client: openai.OpenAI) -> bool:
    refused: openai.AuthenticationError | None = None
    try:
        client.models.list()
    except openai.AuthenticationError as exc:
        refused = exc
    if refused is None:
        return False
    assert refused.code == "account_deactivated", refused
    assert "deactivated account" in refused.message
    return True


def _works(client: openai.OpenAI) -> bool:
    try:
        client.models.list()
    except openai.AuthenticationError:
        return False
    return True


def _balance(admin: OperatorClient, org: str) -> str:
    return str(admin.get(f"/admin/api/organizations/{org}").json()["balance"]["balance"]["usd"])


def test_operator_console_users_and_organizations(sqlite_dep: Deployment) -> None:
    dep = sqlite_dep
    base = dep.start_server().base_url
    owner, org = verified_owner(dep, base, "customer@example.com")
    user_id = owner.get("/api/me").json()["id"]
    made = owner.post(f"/api/orgs/{org}/keys", {"name": "prod"}).json()
    assert _bind(owner, org, "4242424242424242").status_code == 201
    assert owner.post(f"/api/orgs/{org}/top-ups", {"amount_usd": "20"}).status_code == 201
    payment_id = _payment(dep).id
    sdk = openai.OpenAI(api_key=made["key"], base_url=f"{base}/v1", max_retries=0)
    assert _works(sdk)

    root = create_operator(dep, "root@example.com", "admin")
    helper = create_operator(dep, "help@example.com", "support")
    admin = OperatorClient(base).signed_in(root)
    support = OperatorClient(base).signed_in(helper)

    # Find the user, then read the organization: cards by brand and last 4, keys redacted.
    found = admin.get("/admin/api/users?query=CUSTOMER@").json()["data"]
    assert [(u["id"], u["organization_id"]) for u in found] == [(user_id, org)]
    assert [o["id"] for o in admin.get("/admin/api/organizations?query=customer").json()
            ["data"]] == [org]
    overview = admin.get(f"/admin/api/organizations/{org}")
    assert overview.status_code == 200, overview.text
    o = overview.json()
    assert o["balance"]["balance"]["usd"] == "20" and o["deactivated"] is None
    assert [(m["brand"], m["last4"]) for m in o["payment_methods"]] == [("visa", "4242")]
    assert [k["redacted"] for k in o["keys"]] == [made["redacted_value"]]
    assert made["key"] not in overview.text
    assert [m["email"] for m in o["members"]] == ["customer@example.com"]
    assert o["usage"]["days"] == 30

    # Credit: grant $2, adjust -$1, refund $5 of the top-up to the card.
    r = admin.post(f"/admin/api/organizations/{org}/grant",
                   {"amount_usd": "2", "reason": "welcome credit"})
    assert r.status_code == 200, r.text
    assert r.json()["after"]["balance"]["usd"] == "22" and r.json()["kind"] == "grant"
    r = admin.post(f"/admin/api/organizations/{org}/adjust",
                   {"amount_usd": "-1", "reason": "duplicate grant"})
    assert r.status_code == 200, r.text
    assert r.json()["amount"]["usd"] == "-1" and r.json()["after"]["balance"]["usd"] == "21"
    r = admin.post(f"/admin/api/organizations/{org}/adjust",
                   {"amount_usd": "-500", "reason": "too much"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "insufficient_balance"
    r = admin.post(f"/admin/api/organizations/{org}/refund",
                   {"payment_id": payment_id, "amount_usd": "5", "reason": "asked for it back",
                    "idempotency_key": "refund-1"})
    assert r.status_code == 200, r.text
    assert r.json()["after"]["balance"]["usd"] == "16" and r.json()["owed"]["usd"] == "0"
    assert _balance(admin, org) == "16"
    ledger = admin.get(f"/admin/api/organizations/{org}/ledger?limit=2").json()
    assert [e["kind"] for e in ledger["data"]] == ["refund", "adjustment"]
    assert ledger["next_before"] is not None

    # Deactivated: the key answers 401 account_deactivated; the dashboard shows why.
    r = admin.post(f"/admin/api/organizations/{org}/deactivate", {"reason": "card fraud"})
    assert r.status_code == 200 and r.json()["deactivated"]["reason"] == "card fraud"
    _eventually(lambda: _deactivated(sdk))
    shown = owner.get(f"/api/orgs/{org}").json()
    assert shown["deactivated"] is True and shown["deactivated_reason"] == "card fraud"
    r = admin.post(f"/admin/api/organizations/{org}/reactivate", {"reason": "cleared"})
    assert r.status_code == 200 and r.json()["deactivated"] is None
    _eventually(lambda: _works(sdk))
    assert owner.get(f"/api/orgs/{org}").json()["deactivated"] is False

    # The user: deactivated, their session ends and they cannot sign in; then reactivated.
    r = admin.post(f"/admin/api/users/{user_id}/deactivate", {"reason": "shared account"})
    assert r.status_code == 200, r.text
    assert owner.get("/api/me").status_code == 401
    again = ApiClient(base)
    r = again.post("/api/auth/signin", {"email": "customer@example.com", "password": PASSWORD})
    assert r.status_code == 401 and r.json()["error"]["code"] == "account_deactivated"
    _eventually(lambda: _deactivated(sdk))  # the key's creator is deactivated
    assert admin.post(f"/admin/api/users/{user_id}/reactivate",
                      {"reason": "explained"}).status_code == 200
    r = again.post("/api/auth/signin", {"email": "customer@example.com", "password": PASSWORD})
    assert r.status_code == 200, r.text
    _eventually(lambda: _works(sdk))

    # Reset the phone; issue codes (shown once), which the customer can redeem.
    assert admin.get(f"/admin/api/users/{user_id}").json()["phone_masked"] is not None
    r = admin.post(f"/admin/api/users/{user_id}/reset-phone", {"reason": "lost the SIM"})
    assert r.status_code == 204, r.text
    assert admin.get(f"/admin/api/users/{user_id}").json()["phone_masked"] is None
    r = admin.post("/admin/api/codes", {"amount_usd": "3", "count": 2, "reason": "x"})
    assert r.status_code == 400  # no unknown fields
    r = admin.post("/admin/api/codes", {"amount_usd": "3", "count": 2})
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    codes = r.json()["codes"]
    assert len(codes) == 2
    assert again.post(f"/api/orgs/{org}/redeem", {"code": codes[0]}).status_code == 200

    # Support: a note, and nothing else.
    r = support.post("/admin/api/notes", {"target": f"org:{org}", "body": "called about the "
                                          "refund"})
    assert r.status_code == 201, r.text
    for path, body in ((f"/admin/api/organizations/{org}/grant",
                        {"amount_usd": "100", "reason": "me"}),
                       (f"/admin/api/organizations/{org}/deactivate", {"reason": "me"}),
                       (f"/admin/api/users/{user_id}/reset-phone", {"reason": "me"}),
                       ("/admin/api/codes", {"amount_usd": "100"})):
        r = support.post(path, body)
        assert r.status_code == 403 and r.json()["error"]["code"] == "admin_required", path
    assert _balance(admin, org) == "19"  # 16 + a $3 code
    notes = admin.get(f"/admin/api/organizations/{org}").json()["notes"]
    assert [n["operator_id"] for n in notes] == [helper.id]

    # Every action: in the audit trail with actor, target and before/after.
    events = admin.get(f"/admin/api/audit?actor=operator:{root.id}&limit=100").json()["data"]
    seen = {(e["action"], e["target"]) for e in events}
    assert seen >= {("credit.granted", f"org:{org}"), ("credit.adjusted", f"org:{org}"),
                    ("credit.refunded", f"org:{org}"), ("org.deactivated", f"org:{org}"),
                    ("org.reactivated", f"org:{org}"), ("user.deactivated", f"user:{user_id}"),
                    ("user.reactivated", f"user:{user_id}"),
                    ("user.phone_reset", f"user:{user_id}"),
                    ("codes.issued", "redemption_codes")}
    for e in events:
        if e["action"].split(".")[0] in ("credit", "org", "user", "codes"):
            assert e["after"], e
            assert e["before"] or e["action"] == "codes.issued", e
    granted = next(e for e in events if e["action"] == "credit.granted")
    assert granted["before"]["balance_nano"] == 20 * 10**9
    assert granted["after"]["balance_nano"] == 22 * 10**9
    assert granted["detail"]["reason"] == "welcome credit"
    assert codes[0] not in str(events)
    [noted] = admin.get(f"/admin/api/audit?action=note.*&target=org:{org}").json()["data"]
    assert noted["actor"] == f"operator:{helper.id}" and noted["after"]["body"]
    # Support reads the trail too; paging goes back in time.
    page = support.get(f"/admin/api/audit?organization_id={org}&limit=2").json()
    assert len(page["data"]) == 2 and page["next_cursor"] is not None
    older = support.get(f"/admin/api/audit?organization_id={org}&limit=2"
                        f"&cursor={page['next_cursor']}").json()["data"]
    assert older[0]["id"] < page["data"][-1]["id"]

    # The trail cannot be rewritten, not even by someone with the database.
    with pytest.raises(sa.exc.DBAPIError), dep.engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_events SET actor = 'nobody'"))
    assert dep.verify() == []
