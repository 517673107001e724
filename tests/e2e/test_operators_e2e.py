"""The operator console's sign-in and operator management over HTTP against a real server:
operators made by the real CLI, password plus TOTP codes computed from the enrolment URI,
replay refused, recovery codes once, roles, disabling ends sessions, user and operator
sessions kept apart, throttling — and all of it in the audit trail."""

from __future__ import annotations

import json

import httpx2

from tests.e2e.api_client import ApiClient
from tests.e2e.operator_client import (
    NewOperator,
    OperatorClient,
    cli_create_operator,
    create_operator,
)
from tests.harness import Deployment

PASSWORD = "a long enough passphrase 8"
INCORRECT = "Incorrect email, password or code."


def _wrong(code: str) -> str:
    return f"{(int(code) + 500_000) % 1_000_000:06d}"


def _refused(r: httpx2.Response) -> None:
    assert r.status_code == 401, r.text
    assert r.json()["error"]["message"] == INCORRECT
    assert r.json()["error"]["code"] == "invalid_credentials"


def _cookie(r: httpx2.Response, name: str) -> str:
    [found] = [c for c in r.headers.get_list("set-cookie") if c.startswith(f"{name}=")]
    return found.lower()


def test_operator_console(any_dep: Deployment) -> None:
    dep = any_dep
    server = dep.start_server(FAREGATE_TRUSTED_PROXIES='["127.0.0.1"]',
                              FAREGATE_OPERATOR_SIGN_IN_ATTEMPTS_PER_ACCOUNT="20")
    base = server.base_url
    root = cli_create_operator(dep, "root@example.com", "admin")
    admin = OperatorClient(base)

    # Password alone, or with a wrong code: the same refusal.
    _refused(admin.sign_in(root))
    _refused(admin.sign_in(root, totp_code=_wrong(root.code())))
    code = root.code()
    r = admin.sign_in(root, totp_code=code)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["operator"]["email"] == "root@example.com"
    assert body["operator"]["role"] == "admin" and body["operator"]["totp_confirmed"]
    assert body["recovery_codes_left"] == 10 and not body["used_recovery_code"]
    session_cookie = _cookie(r, "fg_admin_session")
    for attribute in ("path=/admin", "httponly", "samesite=strict"):
        assert attribute in session_cookie
    assert "secure" not in session_cookie  # plain HTTP here
    assert "path=/admin" in _cookie(r, "fg_admin_csrf")
    assert admin.http.cookies.get("fg_admin_csrf") == body["csrf_token"]
    # The same code again, from anywhere: refused.
    _refused(OperatorClient(base).sign_in(root, totp_code=code))
    me = admin.get("/admin/api/me")
    assert me.status_code == 200 and me.json()["id"] == root.id

    # Behind a trusted TLS-terminating proxy the cookies are Secure.
    r = httpx2.get(f"{base}/admin/api/auth/csrf", headers={"X-Forwarded-Proto": "https"})
    assert "secure" in _cookie(r, "fg_admin_csrf")

    # An admin makes a support operator; the enrolment is in that one response.
    r = admin.post("/admin/api/operators", {"email": "help@example.com", "role": "support",
                                            "name": "Help Desk", "password": PASSWORD})
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    made = r.json()
    helper = NewOperator(made["operator"]["id"], "help@example.com", PASSWORD,
                         made["enrolment"]["otpauth_uri"], made["enrolment"]["recovery_codes"])
    assert made["enrolment"]["secret"] in helper.otpauth_uri
    assert made["operator"]["totp_confirmed"] is False
    support = OperatorClient(base).signed_in(helper)
    assert support.get("/admin/api/me").json()["role"] == "support"

    # Support is read-only: every admin route is refused, and nothing changes.
    for method, path, payload in [
            ("GET", "/admin/api/operators", None),
            ("POST", "/admin/api/operators", {"email": "spy@example.com", "role": "admin",
                                              "password": PASSWORD}),
            ("PATCH", f"/admin/api/operators/{helper.id}", {"role": "admin"}),
            ("PATCH", f"/admin/api/operators/{root.id}", {"disabled": True}),
            ("POST", f"/admin/api/operators/{root.id}/reset-totp", None)]:
        r = support.request(method, path, payload)
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["error"]["code"] == "admin_required"
    listed = {o["email"]: o for o in admin.get("/admin/api/operators").json()["data"]}
    assert set(listed) == {"root@example.com", "help@example.com"}
    assert listed["help@example.com"]["role"] == "support"
    assert listed["help@example.com"]["totp_confirmed"] is True
    assert listed["root@example.com"]["status"] == "active"

    # A recovery code works once.
    rc = helper.recovery_codes[0]
    second = OperatorClient(base)
    r = second.sign_in(helper, recovery_code=rc)
    assert r.status_code == 200, r.text
    assert r.json()["used_recovery_code"] and r.json()["recovery_codes_left"] == 9
    _refused(OperatorClient(base).sign_in(helper, recovery_code=rc))

    # Disabling ends every session of the operator at once, and they cannot sign in.
    r = admin.patch(f"/admin/api/operators/{helper.id}", {"disabled": True})
    assert r.status_code == 200 and r.json()["status"] == "disabled"
    assert support.get("/admin/api/me").status_code == 401
    assert second.get("/admin/api/me").status_code == 401
    _refused(OperatorClient(base).sign_in(helper, totp_code=helper.code(1)))
    _refused(OperatorClient(base).sign_in(helper, recovery_code=helper.recovery_codes[1]))

    # The last enabled admin cannot be disabled or demoted, not even by themself.
    for change in ({"disabled": True}, {"role": "support"}):
        r = admin.patch(f"/admin/api/operators/{root.id}", change)
        assert r.status_code == 409 and r.json()["error"]["code"] == "last_admin"

    # A TOTP reset gives new enrolment data; the old authenticator no longer works.
    r = admin.post(f"/admin/api/operators/{helper.id}/reset-totp")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    reset = r.json()
    assert admin.patch(f"/admin/api/operators/{helper.id}",
                       {"disabled": False}).json()["status"] == "active"
    _refused(OperatorClient(base).sign_in(helper, recovery_code=helper.recovery_codes[2]))
    helper.otpauth_uri = reset["enrolment"]["otpauth_uri"]
    helper.recovery_codes = reset["enrolment"]["recovery_codes"]
    OperatorClient(base).signed_in(helper)

    # CSRF: a state-changing request without the token is refused.
    r = admin.http.post("/admin/api/operators", json={"email": "x@example.com",
                                                       "role": "admin", "password": PASSWORD})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"

    assert admin.post("/admin/api/auth/signout").status_code == 204
    assert admin.get("/admin/api/me").status_code == 401

    rows = dep.query("SELECT action, actor, target, detail FROM audit_events "
                     "WHERE action LIKE 'operator.%' ORDER BY id")
    actions = [r.action for r in rows]
    assert actions.count("operator.created") == 2
    assert actions.count("operator.sign_in_failed") >= 6
    assert actions.count("operator.signed_in") == 4
    assert "operator.totp_reset" in actions and "operator.signed_out" in actions
    by_cli, by_api = [r for r in rows if r.action == "operator.created"]
    assert by_cli.actor.startswith("cli:") and by_api.actor == f"operator:{root.id}"
    updates = [(r.actor, r.target, json.loads(r.detail)) for r in rows
               if r.action == "operator.updated"]
    assert updates == [
        (f"operator:{root.id}", helper.id, {"before": {"disabled": False},
                                            "after": {"disabled": True}}),
        (f"operator:{root.id}", helper.id, {"before": {"disabled": True},
                                            "after": {"disabled": False}})]
    reasons = [json.loads(r.detail)["reason"] for r in rows
               if r.action == "operator.sign_in_failed"]
    assert {"code_missing", "wrong_code", "reused_code", "wrong_recovery_code",
            "disabled"} <= set(reasons)
    # No secret in the audit trail or the database.
    dump = str(dep.query("SELECT * FROM operators")) + str(dep.query("SELECT * FROM audit_events"))
    for secret in (root.password, PASSWORD, *root.recovery_codes,
                   made["enrolment"]["secret"], reset["enrolment"]["secret"]):
        assert secret not in dump


def test_user_and_operator_sessions_are_kept_apart(sqlite_dep: Deployment) -> None:
    dep = sqlite_dep
    base = dep.start_server().base_url
    root = create_operator(dep, "root@example.com", "admin")
    op = OperatorClient(base).signed_in(root)
    user = ApiClient(base)
    user.signup("user@example.com", PASSWORD)
    assert user.get("/api/me").status_code == 200
    user_token = user.http.cookies.get("fg_session")
    op_token = op.http.cookies.get("fg_admin_session")
    assert user_token and op_token

    # A user's session is nobody on /admin/api, whichever cookie carries it.
    assert user.get("/admin/api/me").status_code == 401
    forged = OperatorClient(base)
    forged.http.cookies.set("fg_admin_session", user_token)
    assert forged.get("/admin/api/me").status_code == 401
    assert forged.get("/admin/api/operators").status_code == 401
    # An operator's session is nobody on /api.
    assert op.get("/api/me").status_code == 401
    as_user = ApiClient(base)
    as_user.http.cookies.set("fg_session", op_token)
    assert as_user.get("/api/me").status_code == 401
    # Neither side's CSRF token is good on the other.
    user_csrf = user.http.cookies.get("fg_csrf")
    assert user_csrf
    r = op.post("/admin/api/operators", {"email": "x@example.com", "role": "admin",
                                         "password": PASSWORD},
                headers={"X-CSRF-Token": user_csrf})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
    # Both sessions still work.
    assert user.get("/api/me").status_code == 200
    assert op.get("/admin/api/me").status_code == 200


def test_sign_in_is_throttled(sqlite_dep: Deployment) -> None:
    dep = sqlite_dep
    base = dep.start_server(FAREGATE_OPERATOR_SIGN_IN_ATTEMPTS_PER_ACCOUNT="3",
                            FAREGATE_OPERATOR_SIGN_IN_ATTEMPTS_PER_IP="5").base_url
    root = create_operator(dep, "root@example.com", "admin")
    c = OperatorClient(base)
    for _ in range(3):
        _refused(c.sign_in(root, password="not the password", totp_code=root.code()))
    # Now even the right password and code are refused for a while.
    r = c.sign_in(root, totp_code=root.code())
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) > 0
    assert "Too many operator sign-in attempts" in r.json()["error"]["message"]
    # Per address: two more attempts (on any account) reach the address's limit.
    other = create_operator(dep, "other@example.com", "admin")
    _refused(c.post("/admin/api/auth/signin", {"email": "nobody@example.com",
                                               "password": PASSWORD, "totp_code": "123456"}))
    _refused(c.sign_in(other, password="not the password", totp_code=other.code()))
    assert c.sign_in(other, totp_code=other.code()).status_code == 429
