"""Organizations: visibility (404 for non-members, 403 for members where an owner is needed),
balance, renaming, roles, removal (never the last owner, never from one's personal
organization), invitations and the audit trail."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from faregate.db.schema import invitations as invitations_table
from faregate.errors import InvalidRequest, NotFound, PermissionDenied, RateLimited, Refused
from faregate.identity import invitations, orgs
from faregate.identity.access import role_of
from faregate.identity.users import User
from faregate.ledger.transfers import grant
from tests.identity.conftest import RULES, SECRET, add_member, audit, new_user


@pytest.fixture
def team(engine: Engine) -> tuple[User, User, User]:
    """(owner, member, stranger); the member belongs to the owner's organization."""
    owner = new_user(engine, "owner@example.com", verified=True)
    member = new_user(engine, "member@example.com")
    stranger = new_user(engine, "stranger@example.com")
    add_member(engine, owner.organization_id, member.id, "member")
    return owner, member, stranger


def test_visibility_and_balance(engine: Engine, team: tuple[User, User, User]) -> None:
    owner, member, stranger = team
    org = owner.organization_id
    with engine.begin() as conn:
        grant(conn, org, 5_250_000_001, actor="test", reason="test")
        detail = orgs.get_org(conn, org, user_id=member.id)
        assert detail.role == "member"
        assert not detail.personal
        assert detail.balance_nano == 5_250_000_001
        assert detail.available_nano == 5_250_000_001
        assert orgs.get_org(conn, org, user_id=owner.id).personal
        listed = orgs.list_orgs(conn, member.id)
        assert [(o.id, o.role, o.personal) for o in listed] == [
            (member.organization_id, "owner", True), (org, "member", False)]
        for call in (lambda: orgs.get_org(conn, org, user_id=stranger.id),
                     lambda: orgs.list_members(conn, org, user_id=stranger.id),
                     lambda: orgs.get_org(conn, "org_nope", user_id=owner.id)):
            with pytest.raises(NotFound, match=r"^No organization with id") as hidden:
                call()
            assert hidden.value.code == "organization_not_found"
        with pytest.raises(PermissionDenied):
            orgs.rename_org(conn, org, user_id=member.id, name="Mine now")
        with pytest.raises(PermissionDenied):
            orgs.list_org_events(conn, org, user_id=member.id)
        renamed = orgs.rename_org(conn, org, user_id=owner.id, name=" Acme  Inc ")
        assert renamed.name == "Acme Inc"
    [event] = audit(engine, "org.renamed")
    assert event.detail == {"from": "Personal (owner@example.com)", "to": "Acme Inc"}


def test_roles_and_owner_protection(engine: Engine, team: tuple[User, User, User]) -> None:
    owner, member, stranger = team
    org = owner.organization_id
    third = new_user(engine, "third@example.com")
    add_member(engine, org, third.id, "member")
    with engine.begin() as conn:
        with pytest.raises(PermissionDenied):
            orgs.change_role(conn, org, member.id, user_id=member.id, role="owner")
        with pytest.raises(PermissionDenied, match="Only an owner"):
            orgs.remove_member(conn, org, third.id, user_id=member.id)
        with pytest.raises(NotFound):
            orgs.change_role(conn, org, stranger.id, user_id=owner.id, role="owner")
        with pytest.raises(NotFound):
            orgs.remove_member(conn, org, member.id, user_id=stranger.id)
        for attempt in (lambda: orgs.change_role(conn, org, owner.id, user_id=owner.id,
                                                 role="member"),
                        lambda: orgs.remove_member(conn, org, owner.id, user_id=owner.id)):
            with pytest.raises(Refused, match="last owner") as last:
                attempt()
            assert last.value.code == "last_owner"
        promoted = orgs.change_role(conn, org, member.id, user_id=owner.id, role="owner")
        assert promoted.role == "owner"
        # Two owners now, but the organization is the owner's personal one: they stay.
        with pytest.raises(Refused) as personal:
            orgs.remove_member(conn, org, owner.id, user_id=member.id)
        assert personal.value.code == "personal_organization"
        with pytest.raises(Refused, match="personal organization"):
            orgs.change_role(conn, org, owner.id, user_id=owner.id, role="member")
        orgs.change_role(conn, org, member.id, user_id=member.id, role="member")
        orgs.remove_member(conn, org, member.id, user_id=member.id)  # a member may leave
        orgs.remove_member(conn, org, third.id, user_id=owner.id)
        assert role_of(conn, org, member.id) is None
        assert role_of(conn, org, third.id) is None
        assert [m.email for m in orgs.list_members(conn, org, user_id=owner.id)] == [
            owner.email]
    changes = sorted(audit(engine, "member.role_changed"), key=lambda e: e.id)
    assert [e.detail for e in changes] == [
        {"email": member.email, "from": "member", "to": "owner"},
        {"email": member.email, "from": "owner", "to": "member"}]
    removed = sorted(audit(engine, "member.removed"), key=lambda e: e.id)
    assert [(e.target, e.detail["left"] if e.detail else None) for e in removed] == [
        (member.id, True), (third.id, False)]


def test_a_lone_owner_of_someone_elses_organization_stays(engine: Engine) -> None:
    creator = new_user(engine, "creator@example.com")
    boss = new_user(engine, "boss@example.com")
    org = creator.organization_id
    add_member(engine, org, boss.id, "owner")
    with engine.begin() as conn:  # the creator is no longer an owner (made by hand here)
        conn.execute(sa.text("UPDATE memberships SET role = 'member' WHERE user_id = :u "
                             "AND organization_id = :o"), {"u": creator.id, "o": org})
    with engine.begin() as conn:
        with pytest.raises(Refused, match="last owner"):
            orgs.remove_member(conn, org, boss.id, user_id=boss.id)
        with pytest.raises(Refused, match="last owner"):
            orgs.change_role(conn, org, boss.id, user_id=boss.id, role="member")
        with pytest.raises(PermissionDenied):
            orgs.remove_member(conn, org, boss.id, user_id=creator.id)


def _link_token(text: str) -> str:
    match = re.search(r"/invitations/accept\?token=([A-Za-z0-9_-]+)", text)
    assert match, text
    return match.group(1)


def test_invitation_flow(engine: Engine, team: tuple[User, User, User]) -> None:
    owner, member, stranger = team
    org = owner.organization_id
    with engine.begin() as conn:
        with pytest.raises(PermissionDenied):
            invitations.invite(conn, org, user_id=member.id, email="new@example.com",
                               role="member", ip=None, rules=RULES, secret=SECRET)
        with pytest.raises(Refused, match="already a member"):
            invitations.invite(conn, org, user_id=owner.id, email="MEMBER@example.com",
                               role="member", ip=None, rules=RULES, secret=SECRET)
        first = invitations.invite(conn, org, user_id=owner.id, email="Stranger@example.com",
                                   role="member", ip="10.3.0.1", rules=RULES, secret=SECRET)
        second = invitations.invite(conn, org, user_id=owner.id, email="stranger@example.com",
                                    role="owner", ip="10.3.0.1", rules=RULES, secret=SECRET)
        assert second.email.to == "stranger@example.com"
        assert "owner@example.com invited you" in second.email.text
        assert [i.id for i in invitations.list_invitations(conn, org, user_id=owner.id)] == [
            second.invitation.id]
        with pytest.raises(PermissionDenied):
            invitations.list_invitations(conn, org, user_id=member.id)
        stored = conn.execute(sa.select(invitations_table.c.token_hash)).scalars().all()
    token = _link_token(second.email.text)
    assert token not in stored
    with engine.begin() as conn:
        with pytest.raises(InvalidRequest) as replaced:
            invitations.accept_invitation(conn, token=_link_token(first.email.text),
                                          user_id=stranger.id, ip=None, secret=SECRET)
        assert replaced.value.code == "invitation_revoked"
        with pytest.raises(PermissionDenied, match="This invitation is for stranger@"):
            invitations.accept_invitation(conn, token=token, user_id=member.id, ip=None,
                                          secret=SECRET)
        joined = invitations.accept_invitation(conn, token=token, user_id=stranger.id,
                                               ip="10.3.0.2", secret=SECRET)
        assert (joined.id, joined.role, joined.personal) == (org, "owner", False)
        with pytest.raises(InvalidRequest) as used:
            invitations.accept_invitation(conn, token=token, user_id=stranger.id, ip=None,
                                          secret=SECRET)
        assert used.value.code == "invitation_used"
        with pytest.raises(Refused):
            invitations.revoke_invitation(conn, org, second.invitation.id, user_id=owner.id)
    [added] = audit(engine, "member.added")
    assert added.target == stranger.id
    assert added.organization_id == org
    assert added.detail is not None
    assert added.detail["role"] == "owner"


def test_invitation_refusals(engine: Engine, team: tuple[User, User, User]) -> None:
    owner, member, stranger = team
    org = owner.organization_id
    with engine.begin() as conn:
        with pytest.raises(PermissionDenied, match="verify your email"):
            invitations.invite(conn, member.organization_id, user_id=member.id,
                               email="x@example.com", role="member", ip=None, rules=RULES,
                               secret=SECRET)
        sent = invitations.invite(conn, org, user_id=owner.id, email=stranger.email,
                                  role="member", ip=None, rules=RULES, secret=SECRET)
        revoked = invitations.invite(conn, org, user_id=owner.id, email="other@example.com",
                                     role="member", ip=None, rules=RULES, secret=SECRET)
        invitations.revoke_invitation(conn, org, revoked.invitation.id, user_id=owner.id)
        invitations.revoke_invitation(conn, org, revoked.invitation.id, user_id=owner.id)
        with pytest.raises(NotFound):
            invitations.revoke_invitation(conn, member.organization_id, sent.invitation.id,
                                          user_id=member.id)
        assert [i.email for i in invitations.list_invitations(conn, org, user_id=owner.id)] \
            == [stranger.email]
        conn.execute(invitations_table.update().values(
            expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
        assert invitations.list_invitations(conn, org, user_id=owner.id) == []
        with pytest.raises(InvalidRequest) as expired:
            invitations.accept_invitation(conn, token=_link_token(sent.email.text),
                                          user_id=stranger.id, ip=None, secret=SECRET)
        assert expired.value.code == "invitation_expired"
        with pytest.raises(InvalidRequest) as invalid:
            invitations.accept_invitation(conn, token="nope", user_id=stranger.id, ip=None,
                                          secret=SECRET)
        assert invalid.value.code == "invalid_token"
    assert len(audit(engine, "invitation.revoked")) == 1


def test_invitations_are_capped_per_hour(engine: Engine) -> None:
    owner = new_user(engine, "owner@example.com", verified=True)
    with engine.begin() as conn:
        for i in range(invitations.INVITATIONS_PER_ORG_PER_HOUR):
            invitations.invite(conn, owner.organization_id, user_id=owner.id,
                               email=f"x{i}@example.com", role="member", ip=None, rules=RULES,
                               secret=SECRET)
        with pytest.raises(RateLimited):
            invitations.invite(conn, owner.organization_id, user_id=owner.id,
                               email="one-more@example.com", role="member", ip=None,
                               rules=RULES, secret=SECRET)


def test_audit_pages(engine: Engine) -> None:
    owner = new_user(engine, "owner@example.com")
    org = owner.organization_id
    with engine.begin() as conn:
        for i in range(5):
            orgs.rename_org(conn, org, user_id=owner.id, name=f"Name {i}")
        first = orgs.list_org_events(conn, org, user_id=owner.id, limit=2)
        assert [e.detail["to"] for e in first.events if e.detail] == ["Name 4", "Name 3"]
        assert first.has_more
        assert first.next_before == first.events[-1].id
        rest = orgs.list_org_events(conn, org, user_id=owner.id, limit=10,
                                    before_id=first.next_before)
        assert [e.detail["to"] for e in rest.events if e.detail] == ["Name 2", "Name 1",
                                                                     "Name 0"]
        assert not rest.has_more
        assert rest.next_before is None
