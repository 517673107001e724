"""New users: personal organization, owner membership, default project; email syntax; projects
(members see them, owners change them, the default one stays)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from faregate.db.schema import memberships, users
from faregate.errors import InvalidRequest, NotFound, PermissionDenied, Refused
from faregate.identity.access import require_member, require_owner
from faregate.identity.projects import (
    create_project,
    get_default_project,
    list_projects,
    update_project,
)
from faregate.identity.users import create_user, get_user_by_email, normalize_email
from tests.identity.conftest import add_member, audit, new_user


def test_create_user_makes_owner_membership_and_default_project(engine: Engine) -> None:
    with engine.begin() as conn:
        user = create_user(conn, "  Ann@Example.COM ")
        assert user.email == "ann@example.com"
        role = conn.execute(sa.select(memberships.c.role).where(
            memberships.c.user_id == user.id,
            memberships.c.organization_id == user.organization_id)).scalar_one()
        assert role == "owner"
        default = get_default_project(conn, user.organization_id)
        assert default.is_default
        assert default.name == "Default project"
        assert default.archived_at is None
        row = conn.execute(sa.select(users).where(users.c.id == user.id)).one()
        assert row.password_hash is None  # the CLI's users reset their password first
        assert row.email_verified_at is None
        assert get_user_by_email(conn, "ANN@example.com ") == user
        with pytest.raises(Refused, match="already exists"):
            create_user(conn, "ann@EXAMPLE.com")


@pytest.mark.parametrize("bad", ["not-an-email", "a@b", "two@@example.com", "a..b@example.com",
                                 "x@localhost", "sp ace@example.com", "x" * 320 + "@ex.com"])
def test_invalid_addresses_are_refused(bad: str) -> None:
    with pytest.raises(InvalidRequest, match="not a valid email") as refused:
        normalize_email(bad)
    assert refused.value.param == "email"


def test_default_project_of_an_unknown_org(engine: Engine) -> None:
    with engine.begin() as conn, pytest.raises(NotFound):
        get_default_project(conn, "org_nope")


def test_projects_access_and_default_protection(engine: Engine) -> None:
    owner = new_user(engine, "owner@example.com")
    other = new_user(engine, "other@example.com")
    org = owner.organization_id
    add_member(engine, org, other.id, "member")
    with engine.begin() as conn:
        made = create_project(conn, org, user_id=owner.id, name="  Research   team ")
        assert made.name == "Research team"
        assert not made.is_default
        assert [p.name for p in list_projects(conn, org, user_id=other.id)] == [
            "Default project", "Research team"]
        with pytest.raises(PermissionDenied):
            create_project(conn, org, user_id=other.id, name="Nope")
        with pytest.raises(PermissionDenied):
            update_project(conn, org, made.id, user_id=other.id, name="Nope")
        with pytest.raises(NotFound):
            list_projects(conn, other.organization_id, user_id=owner.id)
        with pytest.raises(InvalidRequest, match="cannot be empty"):
            create_project(conn, org, user_id=owner.id, name="   ")
        with pytest.raises(InvalidRequest, match="control characters"):
            create_project(conn, org, user_id=owner.id, name="a\x00b")

        archived = update_project(conn, org, made.id, user_id=owner.id, name="Lab",
                                  archived=True)
        assert archived.name == "Lab"
        assert archived.archived_at is not None
        back = update_project(conn, org, made.id, user_id=owner.id, archived=False)
        assert back.archived_at is None
        default = get_default_project(conn, org)
        with pytest.raises(Refused, match="default project cannot be archived"):
            update_project(conn, org, default.id, user_id=owner.id, archived=True)
        renamed = update_project(conn, org, default.id, user_id=owner.id, name="Main")
        assert renamed.name == "Main"
        assert renamed.is_default
        with pytest.raises(NotFound):
            update_project(conn, org, "proj_nope", user_id=owner.id, name="x")
    actions = {e.action for e in audit(engine, "project.created")
               + audit(engine, "project.archived") + audit(engine, "project.renamed")}
    assert actions == {"project.created", "project.archived", "project.renamed"}


def test_access_helpers(engine: Engine) -> None:
    owner = new_user(engine, "o@example.com")
    stranger = new_user(engine, "s@example.com")
    with engine.begin() as conn:
        assert require_member(conn, owner.organization_id, owner.id) == "owner"
        require_owner(conn, owner.organization_id, owner.id)
        with pytest.raises(NotFound) as hidden:
            require_owner(conn, owner.organization_id, stranger.id)
        assert hidden.value.status == 404
