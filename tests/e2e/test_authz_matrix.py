"""The authorization matrix of /api, driven by /openapi.json so that a new endpoint cannot
escape it: for every endpoint, someone signed out gets 401 (but for the public ones), a user
of another organization gets 404 for everything about an organization that is not theirs, and
a member who is not an owner gets 403 where an owner is needed — and none of them changes
anything."""

from __future__ import annotations

from typing import Any

from tests.e2e.api_client import ApiClient, invited_member, verified_owner, verified_user
from tests.e2e.operator_client import OperatorClient, create_operator
from tests.e2e.sse_client import SseStream
from tests.harness import Deployment

PASSWORD = "a long enough passphrase 7"

PUBLIC = {
    ("GET", "/api/auth/csrf"), ("POST", "/api/auth/signup"), ("POST", "/api/auth/signin"),
    ("POST", "/api/auth/verify-email"), ("POST", "/api/auth/password-reset"),
    ("POST", "/api/auth/password-reset/confirm"), ("GET", "/api/key-scopes"),
    ("POST", "/api/auth/signout"),  # signing out when signed out is harmless
}
# Endpoints about the signed-in user themself (no organization in the path).
PERSONAL = {
    ("POST", "/api/auth/verify-email/resend"),
    ("GET", "/api/me"), ("PATCH", "/api/me"), ("POST", "/api/me/password"),
    ("GET", "/api/me/sessions"),
    ("DELETE", "/api/me/sessions/{session_id}"), ("GET", "/api/me/phone"),
    ("POST", "/api/me/phone/code"), ("POST", "/api/me/phone/verify"), ("GET", "/api/orgs"),
    ("POST", "/api/invitations/accept"), ("GET", "/api/billing/config"),
}
# Authenticated by the processor's signature, not by a session.
SIGNED = {("POST", "/webhooks/{processor}")}
OWNER_ONLY = {
    ("PATCH", "/api/orgs/{org_id}"), ("PATCH", "/api/orgs/{org_id}/members/{user_id}"),
    ("DELETE", "/api/orgs/{org_id}/members/{user_id}"),
    ("POST", "/api/orgs/{org_id}/invitations"), ("GET", "/api/orgs/{org_id}/invitations"),
    ("DELETE", "/api/orgs/{org_id}/invitations/{invitation_id}"),
    ("POST", "/api/orgs/{org_id}/projects"),
    ("PATCH", "/api/orgs/{org_id}/projects/{project_id}"), ("GET", "/api/orgs/{org_id}/audit"),
    ("GET", "/api/orgs/{org_id}/billing"), ("POST", "/api/orgs/{org_id}/payment-methods"),
    ("DELETE", "/api/orgs/{org_id}/payment-methods/{method_id}"),
    ("POST", "/api/orgs/{org_id}/top-ups"), ("GET", "/api/orgs/{org_id}/top-ups"),
    ("PUT", "/api/orgs/{org_id}/auto-recharge"), ("POST", "/api/orgs/{org_id}/redeem"),
    ("PUT", "/api/orgs/{org_id}/billing/alerts"),
    ("GET", "/api/orgs/{org_id}/receipts"), ("GET", "/api/orgs/{org_id}/receipts/{number}"),
    ("GET", "/api/orgs/{org_id}/receipts/{number}/html"),
    ("GET", "/api/orgs/{org_id}/receipts/{number}/pdf"),
    ("POST", "/api/orgs/{org_id}/payment-methods/confirm"),
    ("POST", "/api/orgs/{org_id}/top-ups/{attempt_id}/refresh"),
}
# What every member reads (200), the owner or not. The live feed is an event stream.
MEMBER_READS = {
    ("GET", "/api/orgs/{org_id}/usage/series"), ("GET", "/api/orgs/{org_id}/usage/summary"),
    ("GET", "/api/orgs/{org_id}/usage/export.csv"), ("GET", "/api/orgs/{org_id}/usage/recent"),
    ("GET", "/api/orgs/{org_id}/usage/live"), ("GET", "/api/orgs/{org_id}/usage/tier"),
}
STREAMS = {("GET", "/api/orgs/{org_id}/usage/live")}
# A valid body for each endpoint that takes one (the request must pass validation, so that
# the answer is the authorization decision).
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/auth/signup"): {"email": "x@example.com", "password": PASSWORD},
    ("POST", "/api/auth/signin"): {"email": "x@example.com", "password": PASSWORD},
    ("POST", "/api/auth/verify-email"): {"token": "x"},
    ("POST", "/api/auth/password-reset"): {"email": "x@example.com"},
    ("POST", "/api/auth/password-reset/confirm"): {"token": "x", "password": PASSWORD},
    ("PATCH", "/api/me"): {"locale": "en"},
    ("POST", "/api/me/password"): {"current_password": "wrong", "new_password": PASSWORD},
    ("POST", "/api/me/phone/code"): {"phone": "+447400123456"},
    ("POST", "/api/me/phone/verify"): {"code": "000000"},
    ("PATCH", "/api/orgs/{org_id}"): {"name": "hijacked"},
    ("PATCH", "/api/orgs/{org_id}/members/{user_id}"): {"role": "owner"},
    ("POST", "/api/orgs/{org_id}/invitations"): {"email": "spy@example.com"},
    ("POST", "/api/invitations/accept"): {"token": "x"},
    ("POST", "/api/orgs/{org_id}/projects"): {"name": "hijacked"},
    ("PATCH", "/api/orgs/{org_id}/projects/{project_id}"): {
        "name": "hijacked", "monthly_budget_usd": "1", "budget_alert_pcts": [1]},
    ("POST", "/api/orgs/{org_id}/keys"): {"name": "hijacked"},
    ("PATCH", "/api/orgs/{org_id}/keys/{key_id}"): {"name": "hijacked"},
    ("POST", "/api/orgs/{org_id}/payment-methods"): {"payment_method_id": "pm_hijacked"},
    ("POST", "/api/orgs/{org_id}/top-ups"): {"amount_usd": "5"},
    ("PUT", "/api/orgs/{org_id}/auto-recharge"): {"enabled": False},
    ("PUT", "/api/orgs/{org_id}/billing/alerts"): {"low_balance_usd": "5"},
    ("POST", "/api/orgs/{org_id}/redeem"): {"code": "FG-AAAA-BBBB-CCCC-DDDD"},
    ("POST", "/api/orgs/{org_id}/payment-methods/confirm"): {
        "payment_method_id": "pm_x", "verification_id": "pi_x"},
}

# The operator console's API (/admin/api), checked by test_operator_console_matrix: its own
# sessions, where a user's session is nobody. Every other /admin/api endpoint is, by default,
# readable by any operator (GET) or for admins only (any other method).
ADMIN_PUBLIC = {("GET", "/admin/api/auth/csrf"), ("POST", "/admin/api/auth/signin"),
                ("POST", "/admin/api/auth/signout")}
# About the signed-in operator themself: any role.
OPERATOR_SELF = {("GET", "/admin/api/me"), ("POST", "/admin/api/me/password")}
# Reads that support may not make either.
ADMIN_ONLY_READS = {("GET", "/admin/api/operators")}
# The one change support may make: a note (sent with a real target: the body below names none).
SUPPORT_WRITES = {("POST", "/admin/api/notes")}
ADMIN_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/admin/api/auth/signin"): {"email": "x@example.com", "password": PASSWORD,
                                         "totp_code": "000000"},
    ("POST", "/admin/api/me/password"): {"current_password": "wrong",
                                         "new_password": PASSWORD},
    ("POST", "/admin/api/operators"): {"email": "spy@example.com", "role": "admin",
                                       "password": PASSWORD},
    ("PATCH", "/admin/api/operators/{operator_id}"): {"role": "admin"},
    ("POST", "/admin/api/upstreams"): {"name": "rogue", "base_url": "http://127.0.0.1:9/v1",
                                       "models": {"faregate-dev": "faregate-dev"}},
    ("PATCH", "/admin/api/upstreams/{upstream_id}"): {"enabled": False},
    ("POST", "/admin/api/upstreams/{upstream_id}/models"): {"model": "hijacked"},
    # users and organizations (console)
    ("POST", "/admin/api/organizations/{org_id}/grant"): {"amount_usd": "100", "reason": "x"},
    ("POST", "/admin/api/organizations/{org_id}/adjust"): {"amount_usd": "100", "reason": "x"},
    ("POST", "/admin/api/organizations/{org_id}/refund"): {
        "payment_id": "pi_x", "reason": "x", "idempotency_key": "x"},
    ("POST", "/admin/api/organizations/{org_id}/deactivate"): {"reason": "x"},
    ("POST", "/admin/api/organizations/{org_id}/reactivate"): {"reason": "x"},
    ("POST", "/admin/api/users/{user_id}/deactivate"): {"reason": "x"},
    ("POST", "/admin/api/users/{user_id}/reactivate"): {"reason": "x"},
    ("POST", "/admin/api/users/{user_id}/reset-phone"): {"reason": "x"},
    ("POST", "/admin/api/codes"): {"amount_usd": "100"},
    ("POST", "/admin/api/notes"): {"target": "org:org_x", "body": "x"},
    ("POST", "/admin/api/models"): {"id": "hijacked"},
    ("PATCH", "/admin/api/models/{model_id}"): {"input_usd_per_1m": "0"},
    ("POST", "/admin/api/models/{model_id}/aliases"): {"alias": "hijacked"},
    ("PUT", "/admin/api/models/{model_id}/multipliers/{group}"): {"multiplier": "0"},
    ("PUT", "/admin/api/price-groups/{group}"): {"multiplier": "0"},
    ("PUT", "/admin/api/price-groups/{group}/organizations/{org_id}"): {},
    ("PUT", "/admin/api/tiers/{tier}"): {"rpm": 1},
    ("PUT", "/admin/api/organizations/{org_id}/tier"): {"tier": 100},
    ("PUT", "/admin/api/keys/{key_id}/rate-limits"): {"rpm": 1, "tpm": 1},
}


def _operations(c: ApiClient | OperatorClient) -> list[tuple[str, str]]:
    spec = c.get("/openapi.json").json()
    ops = [(m.upper(), p) for p, item in spec["paths"].items() for m in item]
    # destructive ones last, so that a failure to refuse one shows as that failure
    return sorted(ops, key=lambda op: op[0] == "DELETE")


def test_authorization_matrix(sqlite_dep: Deployment) -> None:
    dep = sqlite_dep
    base = dep.start_server().base_url
    owner, org = verified_owner(dep, base, "owner@example.com")
    project = owner.post(f"/api/orgs/{org}/projects", {"name": "p2"}).json()["id"]
    key = owner.post(f"/api/orgs/{org}/keys", {"name": "k", "project_id": project}).json()
    admin_key = owner.post(f"/api/orgs/{org}/keys", {"name": "adm", "kind": "admin"}).json()
    member = invited_member(dep, owner, org, "member@example.com")
    member_id = member.get("/api/me").json()["id"]
    pending = owner.post(f"/api/orgs/{org}/invitations", {"email": "later@example.com"}).json()
    owner_session = owner.get("/api/me/sessions").json()["data"][0]["id"]
    outsider = verified_user(dep, base, "outsider@example.com")
    anonymous = ApiClient(base)

    card = _card(owner, org)
    ids = {"org_id": org, "user_id": member_id, "project_id": project, "key_id": key["id"],
           "invitation_id": pending["id"], "session_id": owner_session, "method_id": card,
           "number": "1", "attempt_id": "ch_x"}
    ops = [op for op in _operations(owner) if not op[1].startswith("/admin/")]
    unclassified = [op for op in ops if op not in PUBLIC | PERSONAL | SIGNED
                    and "{org_id}" not in op[1]]
    assert unclassified == [], "classify every new endpoint in this test"
    missing_bodies = [op for op in ops if op[0] in ("POST", "PATCH", "PUT")
                      and op not in BODIES and op not in SIGNED
                      and op not in {("POST", "/api/auth/signout"),
                                     ("POST", "/api/auth/verify-email/resend"),
                                     ("POST", "/api/orgs/{org_id}/top-ups/{attempt_id}/refresh")}]
    assert missing_bodies == [], "give every new endpoint that takes a body a valid sample"
    usage = [op for op in ops if "/usage/" in op[1] and op[1].startswith("/api/orgs/")]
    assert sorted(usage) == sorted(MEMBER_READS), "classify every new usage endpoint"

    for method, template in ops:
        if (method, template) in SIGNED:
            r = anonymous.request(method, template.format(processor="sandbox"), {"id": "evt"})
            assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_signature"
            continue
        path = template.format(**ids)
        # A member reads usage (an event stream is opened and closed again).
        if (method, template) in STREAMS:
            stream = SseStream(base, path, cookies=dict(member.http.cookies))
            stream.close()
            assert stream.status == 200, (method, template, stream.status)
        elif (method, template) in MEMBER_READS:
            r = member.request(method, path)
            assert r.status_code == 200, (method, template, r.status_code, r.text)
        body = BODIES.get((method, template))
        # Signed out: 401, except for the public endpoints.
        if (method, template) not in PUBLIC:
            r = anonymous.request(method, path, body)
            assert r.status_code == 401, (method, template, r.status_code, r.text)
        # Another organization's user: as if it did not exist.
        if "{org_id}" in template or template == "/api/me/sessions/{session_id}":
            r = outsider.request(method, path, body)
            assert r.status_code == 404, (method, template, r.status_code, r.text)
            assert set(r.json()) == {"error"}
        # A member who is not an owner: refused where an owner is needed.
        if (method, template) in OWNER_ONLY:
            target = path.replace(member_id, owner.get("/api/me").json()["id"])
            r = member.request(method, target, body)
            assert r.status_code == 403, (method, template, r.status_code, r.text)
            assert r.json()["error"]["code"] == "owner_required"

    # Admin keys are for owners: a member can neither make one nor see one.
    r = member.post(f"/api/orgs/{org}/keys", {"name": "adm2", "kind": "admin"})
    assert r.status_code == 403
    assert admin_key["id"] not in str(member.get(f"/api/orgs/{org}/keys").json())
    assert member.get(f"/api/orgs/{org}/keys/{admin_key['id']}").status_code == 404
    assert member.delete(f"/api/orgs/{org}/keys/{admin_key['id']}").status_code == 404
    # A member sees and uses the project keys, but changes only their own.
    assert member.get(f"/api/orgs/{org}/keys/{key['id']}").status_code == 200
    for change in ({"name": "hijacked"}, {"spend_limit_usd": "1", "spend_limit_period": "day"}):
        r = member.patch(f"/api/orgs/{org}/keys/{key['id']}", change)
        assert r.status_code == 403 and r.json()["error"]["code"] == "owner_required"

    # Nothing was changed by any refused request.
    state = owner.get(f"/api/orgs/{org}").json()
    assert state["name"] != "hijacked"
    keys = {k["id"]: k for k in owner.get(f"/api/orgs/{org}/keys").json()["data"]}
    assert keys[key["id"]]["status"] == "active" and keys[key["id"]]["name"] == "k"
    assert keys[key["id"]]["spend_limit"] is None
    assert keys[admin_key["id"]]["status"] == "active"
    listed = owner.get(f"/api/orgs/{org}/projects").json()["data"]
    assert "hijacked" not in [p["name"] for p in listed]
    assert all(p["budget"] is None and p["budget_alert_pcts"] == [50, 80, 100] for p in listed)
    members = owner.get(f"/api/orgs/{org}/members").json()["data"]
    assert {m["role"] for m in members if m.get("user_id", m.get("id")) == member_id} == \
        {"member"}
    assert len(owner.get(f"/api/orgs/{org}/invitations").json()["data"]) == 1
    assert owner.get("/api/me").status_code == 200  # the owner's session was not ended
    billing = owner.get(f"/api/orgs/{org}/billing").json()
    assert [m["id"] for m in billing["payment_methods"]] == [card]
    assert billing["balance"]["usd"] == "0"  # no top-up went through for anyone else
    assert not billing["auto_recharge"]["enabled"]
    assert billing["low_balance_alert"] is None


def _card(owner: ApiClient, org: str) -> str:
    token = owner.http.post("/sandbox/v1/payment_methods", json={
        "number": "4242424242424242", "exp_month": 12, "exp_year": 2040, "cvc": "123",
        "postal_code": "94107"}).json()["id"]
    r = owner.post(f"/api/orgs/{org}/payment-methods", {"payment_method_id": token})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_removed_member_loses_their_keys(sqlite_dep: Deployment) -> None:
    dep = sqlite_dep
    base = dep.start_server().base_url
    owner, org = verified_owner(dep, base)
    member = invited_member(dep, owner, org)
    made = member.post(f"/api/orgs/{org}/keys", {"name": "mine"}).json()
    member_id = member.get("/api/me").json()["id"]
    assert owner.delete(f"/api/orgs/{org}/members/{member_id}").status_code == 204
    keys = {k["id"]: k for k in owner.get(f"/api/orgs/{org}/keys").json()["data"]}
    assert keys[made["id"]]["status"] == "revoked"
    assert member.get(f"/api/orgs/{org}/keys").status_code == 404
    audit = owner.get(f"/api/orgs/{org}/audit").json()["data"]
    actions = [e["action"] for e in audit]
    assert "member.removed" in actions and "api_key.revoked" in actions


def test_operator_console_matrix(sqlite_dep: Deployment) -> None:
    """Every /admin/api endpoint: signed out 401 (but the public ones), a user's session 401,
    a support operator 403 where an admin is needed; an operator without a TOTP code cannot
    sign in; nothing changes."""
    dep = sqlite_dep
    base = dep.start_server().base_url
    root = create_operator(dep, "root@example.com", "admin")
    helper = create_operator(dep, "help@example.com", "support")
    target = create_operator(dep, "target@example.com", "support")
    admin = OperatorClient(base).signed_in(root)
    support = OperatorClient(base).signed_in(helper)
    anonymous = OperatorClient(base)
    user = OperatorClient(base)  # a signed-in user, with the console's anonymous CSRF token
    token = user.http.get("/api/auth/csrf").json()["csrf_token"]
    assert user.http.post("/api/auth/signup", json={"email": "user@example.com",
                                                    "password": PASSWORD},
                          headers={"X-CSRF-Token": token}).status_code == 201
    r = OperatorClient(base).sign_in(target)  # password only
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials"

    ops = [op for op in _operations(admin) if op[1].startswith("/admin/")]
    assert ("GET", "/admin/api/me") in ops
    assert all(op[1].startswith("/admin/api/") for op in ops)
    missing_bodies = [op for op in ops if op[0] in ("POST", "PATCH", "PUT")
                      and op not in ADMIN_BODIES
                      and op not in {("POST", "/admin/api/auth/signout"),
                                     ("POST", "/admin/api/operators/{operator_id}/reset-totp")}]
    assert missing_bodies == [], "give every new endpoint that takes a body a valid sample"
    ids = {"operator_id": target.id, "tier": "1", "org_id": "org_x", "key_id": "key_x"}
    ids = {"model_id": "faregate-dev", "alias": "x", "group": "default", **ids}  # catalog
    ids = {"upstream_id": "1", **ids}  # upstreams
    [person] = dep.query("SELECT id, organization_id FROM users")  # console: a real one
    ids = {**ids, "org_id": person.organization_id, "user_id": person.id}
    for method, template in ops:
        path = template.format(**ids)
        body = ADMIN_BODIES.get((method, template))
        if (method, template) in ADMIN_PUBLIC:
            continue
        for nobody in (anonymous, user):
            r = nobody.request(method, path, body)
            assert r.status_code == 401, (method, template, r.status_code, r.text)
            assert r.json()["error"]["code"] == "not_signed_in"
        if (method, template) in OPERATOR_SELF:
            continue
        r = support.request(method, path, body)
        if method == "GET" and (method, template) not in ADMIN_ONLY_READS:
            assert r.status_code == 200, (method, template, r.status_code, r.text)
        elif (method, template) in SUPPORT_WRITES:
            r = support.request(method, path, {**(body or {}), "target": f"org:{ids['org_id']}"})
            assert r.status_code == 201, (method, template, r.status_code, r.text)
        else:
            assert r.status_code == 403, (method, template, r.status_code, r.text)
            assert r.json()["error"]["code"] == "admin_required"

    # Nothing was changed by any refused request.
    seen = admin.get(f"/admin/api/organizations/{ids['org_id']}").json()
    assert seen["deactivated"] is None and seen["balance"]["balance"]["usd"] == "0"
    assert len(seen["notes"]) == 1  # support's note, the one change support may make
    listed = {o["email"]: o for o in admin.get("/admin/api/operators").json()["data"]}
    assert set(listed) == {"root@example.com", "help@example.com", "target@example.com"}
    assert listed["target@example.com"]["role"] == "support"
    assert listed["target@example.com"]["recovery_codes_left"] == 10
    assert OperatorClient(base).sign_in(target, totp_code=target.code()).status_code == 200
    assert support.get("/admin/api/me").status_code == 200
