"""/api/orgs (members, invitations), projects and the audit trail over HTTP against a running
server, on SQLite and PostgreSQL: a non-member gets 404 for everything about an organization,
a member 403 where an owner is needed; invitations by emailed link; the last owner stays."""

from __future__ import annotations

from typing import Any

from faregate.ledger.transfers import grant
from tests.api.test_auth_api import Browser, Site, error, new_email, site

__all__ = ["site"]  # the module-scoped server fixture, shared with test_auth_api


def _team(site: Site) -> tuple[Browser, Browser, str]:
    """An owner (verified email) and a member who joined by invitation; the org id."""
    owner, member = Browser(site), Browser(site)
    org = owner.signup(verify=True)["personal_organization_id"]
    member.signup()
    r = owner.post(f"/api/orgs/{org}/invitations", {"email": member.email})
    assert r.status_code == 201, r.text
    token = site.link_token(member.email, "/invitations/accept")
    joined = member.post("/api/invitations/accept", {"token": token})
    assert joined.status_code == 200, joined.text
    return owner, member, org


def test_organization_detail_and_balance(site: Site) -> None:
    web = Browser(site)
    user = web.signup()
    org = user["personal_organization_id"]
    with site.dep.engine.begin() as conn:
        grant(conn, org, 1_500_000_001, actor="test", reason="test")
    listed = web.get("/api/orgs").json()["data"]
    assert listed == [{"id": org, "name": f"Personal ({user['email']})", "role": "owner",
                       "personal": True}]
    detail = web.get(f"/api/orgs/{org}").json()
    assert detail["role"] == "owner"
    assert detail["balance"] == {"nano_usd": 1_500_000_001, "usd": "1.500000001"}
    assert detail["available"] == {"nano_usd": 1_500_000_001, "usd": "1.500000001"}
    renamed = web.patch(f"/api/orgs/{org}", {"name": "  Acme   Labs "})
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Acme Labs"
    assert web.patch(f"/api/orgs/{org}", {"name": " "}).status_code == 400
    assert Browser(site).get(f"/api/orgs/{org}").status_code == 401


def test_non_members_see_nothing(site: Site) -> None:
    owner, stranger = Browser(site), Browser(site)
    org = owner.signup(verify=True)["personal_organization_id"]
    stranger.signup()
    project = owner.get(f"/api/orgs/{org}/projects").json()["data"][0]["id"]
    unknown = stranger.get("/api/orgs/org_0000000000000000deadbeef")
    assert unknown.status_code == 404
    for method, path, body in [
        ("GET", f"/api/orgs/{org}", None),
        ("PATCH", f"/api/orgs/{org}", {"name": "mine"}),
        ("GET", f"/api/orgs/{org}/members", None),
        ("DELETE", f"/api/orgs/{org}/members/{owner.get('/api/me').json()['id']}", None),
        ("POST", f"/api/orgs/{org}/invitations", {"email": new_email()}),
        ("GET", f"/api/orgs/{org}/invitations", None),
        ("GET", f"/api/orgs/{org}/projects", None),
        ("POST", f"/api/orgs/{org}/projects", {"name": "x"}),
        ("PATCH", f"/api/orgs/{org}/projects/{project}", {"name": "x"}),
        ("GET", f"/api/orgs/{org}/audit", None),
    ]:
        r = stranger.request(method, path, body)
        assert r.status_code == 404, (method, path, r.text)
        # The same answer as for an organization that does not exist.
        assert error(r)["code"] == error(unknown)["code"] == "organization_not_found"
    assert owner.get(f"/api/orgs/{org}").json()["name"] != "mine"


def test_invitation_flow(site: Site) -> None:
    owner, invitee, wrong = Browser(site), Browser(site), Browser(site)
    owner.signup()
    org = owner.get("/api/me").json()["personal_organization_id"]
    unverified = owner.post(f"/api/orgs/{org}/invitations", {"email": new_email()})
    assert unverified.status_code == 403
    assert error(unverified)["code"] == "email_not_verified"
    owner.post("/api/auth/verify-email",
               {"token": site.link_token(owner.email, "/verify-email")})

    invitee_email = new_email()
    r = owner.post(f"/api/orgs/{org}/invitations", {"email": invitee_email.upper(),
                                                    "role": "member"})
    assert r.status_code == 201, r.text
    invitation = r.json()
    assert invitation["email"] == invitee_email
    assert owner.get(f"/api/orgs/{org}/invitations").json()["data"] == [invitation]
    [mail] = site.outbox(invitee_email)
    assert owner.email in str(mail["text"])
    token = site.link_token(invitee_email, f"{site.server.base_url}/invitations/accept")

    assert Browser(site).post("/api/invitations/accept", {"token": token}).status_code == 401
    wrong.signup()
    mismatch = wrong.post("/api/invitations/accept", {"token": token})
    assert mismatch.status_code == 403
    assert error(mismatch)["code"] == "invitation_email_mismatch"
    assert f"This invitation is for {invitee_email}" in error(mismatch)["message"]

    invitee.signup(invitee_email)
    joined = invitee.post("/api/invitations/accept", {"token": token})
    assert joined.status_code == 200, joined.text
    assert joined.json() == {"id": org, "name": f"Personal ({owner.email})", "role": "member",
                             "personal": False}
    assert {o["id"] for o in invitee.get("/api/me").json()["organizations"]} == {
        org, invitee.get("/api/me").json()["personal_organization_id"]}
    members = owner.get(f"/api/orgs/{org}/members").json()["data"]
    assert [(m["email"], m["role"]) for m in members] == [(owner.email, "owner"),
                                                          (invitee_email, "member")]
    used = invitee.post("/api/invitations/accept", {"token": token})
    assert used.status_code == 400
    assert error(used)["code"] == "invitation_used"
    assert owner.get(f"/api/orgs/{org}/invitations").json()["data"] == []
    actions = [e.action for e in site.audit("member.added") if e.organization_id == org]
    assert actions == ["member.added"]


def test_withdrawn_invitations_cannot_be_accepted(site: Site) -> None:
    owner, invitee = Browser(site), Browser(site)
    org = owner.signup(verify=True)["personal_organization_id"]
    email = new_email()
    invitation = owner.post(f"/api/orgs/{org}/invitations", {"email": email}).json()
    token = site.link_token(email, "/invitations/accept")
    assert owner.delete(f"/api/orgs/{org}/invitations/{invitation['id']}").status_code == 204
    assert owner.delete(f"/api/orgs/{org}/invitations/inv_nope").status_code == 404
    invitee.signup(email)
    r = invitee.post("/api/invitations/accept", {"token": token})
    assert r.status_code == 400
    assert error(r)["code"] == "invitation_revoked"
    assert invitee.get(f"/api/orgs/{org}").status_code == 404


def test_members_are_not_owners(site: Site) -> None:
    owner, member, org = _team(site)
    member_id = member.get("/api/me").json()["id"]
    owner_id = owner.get("/api/me").json()["id"]
    assert member.get(f"/api/orgs/{org}").json()["role"] == "member"
    assert member.get(f"/api/orgs/{org}/members").status_code == 200
    assert member.get(f"/api/orgs/{org}/projects").status_code == 200
    for method, path, body in [
        ("PATCH", f"/api/orgs/{org}", {"name": "mine"}),
        ("PATCH", f"/api/orgs/{org}/members/{member_id}", {"role": "owner"}),
        ("DELETE", f"/api/orgs/{org}/members/{owner_id}", None),
        ("POST", f"/api/orgs/{org}/invitations", {"email": new_email()}),
        ("GET", f"/api/orgs/{org}/invitations", None),
        ("POST", f"/api/orgs/{org}/projects", {"name": "x"}),
        ("GET", f"/api/orgs/{org}/audit", None),
    ]:
        r = member.request(method, path, body)
        assert r.status_code == 403, (method, path, r.text)
        assert error(r)["type"] == "invalid_request_error"


def test_roles_and_the_last_owner(site: Site) -> None:
    owner, member, org = _team(site)
    owner_id = owner.get("/api/me").json()["id"]
    member_id = member.get("/api/me").json()["id"]
    for r in (owner.delete(f"/api/orgs/{org}/members/{owner_id}"),
              owner.patch(f"/api/orgs/{org}/members/{owner_id}", {"role": "member"})):
        assert r.status_code == 409
        assert error(r)["code"] == "last_owner"
        assert "last owner" in error(r)["message"]
    bad_role = owner.patch(f"/api/orgs/{org}/members/{member_id}", {"role": "admin"})
    assert bad_role.status_code == 400
    promoted = owner.patch(f"/api/orgs/{org}/members/{member_id}", {"role": "owner"})
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "owner"
    # The organization is the owner's personal one: the new owner cannot remove them.
    personal = member.delete(f"/api/orgs/{org}/members/{owner_id}")
    assert personal.status_code == 409
    assert error(personal)["code"] == "personal_organization"
    assert member.get(f"/api/orgs/{org}/invitations").status_code == 200
    # A member may leave; afterwards the organization is gone for them.
    assert member.delete(f"/api/orgs/{org}/members/{member_id}").status_code == 204
    assert member.get(f"/api/orgs/{org}").status_code == 404
    assert owner.delete(f"/api/orgs/{org}/members/{member_id}").status_code == 404
    events = [(e.action, e.target) for e in site.audit("member.role_changed")
              + site.audit("member.removed") if e.organization_id == org]
    assert events == [("member.role_changed", member_id), ("member.removed", member_id)]


def test_owner_removes_a_member(site: Site) -> None:
    owner, member, org = _team(site)
    member_id = member.get("/api/me").json()["id"]
    assert owner.delete(f"/api/orgs/{org}/members/{member_id}").status_code == 204
    assert member.get(f"/api/orgs/{org}/projects").status_code == 404
    assert [m["user_id"] for m in owner.get(f"/api/orgs/{org}/members").json()["data"]] == [
        owner.get("/api/me").json()["id"]]


def test_projects(site: Site) -> None:
    owner, member, org = _team(site)
    [default] = owner.get(f"/api/orgs/{org}/projects").json()["data"]
    assert default["is_default"] is True
    assert default["name"] == "Default project"
    made = owner.post(f"/api/orgs/{org}/projects", {"name": "Research"})
    assert made.status_code == 201
    project: dict[str, Any] = made.json()
    assert project["archived"] is False
    listed = member.get(f"/api/orgs/{org}/projects").json()["data"]
    assert [p["name"] for p in listed] == ["Default project", "Research"]
    archived = owner.patch(f"/api/orgs/{org}/projects/{project['id']}", {"archived": True})
    assert archived.status_code == 200
    assert archived.json()["archived"] is True
    assert archived.json()["archived_at"] is not None
    refused = owner.patch(f"/api/orgs/{org}/projects/{default['id']}", {"archived": True})
    assert refused.status_code == 409
    assert "default project cannot be archived" in error(refused)["message"]
    renamed = owner.patch(f"/api/orgs/{org}/projects/{default['id']}", {"name": "Main"})
    assert renamed.json()["name"] == "Main"
    assert renamed.json()["is_default"] is True
    assert member.patch(f"/api/orgs/{org}/projects/{project['id']}",
                        {"archived": False}).status_code == 403
    assert owner.get(f"/api/orgs/{org}/projects/proj_nope").status_code == 404
    assert member.get(f"/api/orgs/{org}/projects/{project['id']}").json()["archived"] is True


def test_audit_trail(site: Site) -> None:
    owner, member, org = _team(site)
    owner.patch(f"/api/orgs/{org}", {"name": "Audited"})
    page = owner.get(f"/api/orgs/{org}/audit?limit=2").json()
    assert [e["action"] for e in page["data"]] == ["org.renamed", "member.added"]
    assert page["has_more"] is True
    older = owner.get(f"/api/orgs/{org}/audit?limit=200&before={page['next_before']}").json()
    actions = [e["action"] for e in older["data"]]
    assert older["has_more"] is False
    # The owner's own sign-in events land in their personal organization, which this is.
    for action in ("invitation.created", "auth.email_verified", "auth.signed_in",
                   "auth.signed_up"):
        assert action in actions
    assert all(e["id"] < page["next_before"] for e in older["data"])
    # The member's sign-up is in the member's own organization, not here.
    member_org = member.get("/api/me").json()["personal_organization_id"]
    theirs = member.get(f"/api/orgs/{member_org}/audit").json()["data"]
    assert "auth.signed_up" in [e["action"] for e in theirs]
    assert actions.count("auth.signed_up") == 1
    assert owner.get(f"/api/orgs/{org}/audit?limit=0").status_code == 400


def test_the_dashboard_language_is_stored_on_the_account(site: Site) -> None:
    web = Browser(site)
    web.signup()
    assert web.get("/api/me").json()["locale"] is None
    r = web.patch("/api/me", {"locale": "zh-CN"})
    assert r.status_code == 200, r.text
    assert r.json()["locale"] == "zh-CN"
    assert web.get("/api/me").json()["locale"] == "zh-CN"
    # The pages follow it when this browser has no language cookie of its own.
    page = web.http.get("/keys", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert '<html lang="zh-CN">' in page.text
    bad = web.patch("/api/me", {"locale": "fr"})
    assert bad.status_code == 400 and error(bad)["param"] == "locale"
    assert web.patch("/api/me", {"locale": None}).json()["locale"] is None
    assert '<html lang="en">' in web.http.get(
        "/keys", headers={"Accept-Language": "en-US,en;q=0.9"}).text
    assert Browser(site).patch("/api/me", {"locale": "en"}).status_code == 401
