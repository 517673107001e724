"""Projects group API keys within an organization. Every organization has one default project,
which cannot be archived; members see the projects, owners create, rename and archive them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from faregate.audit import trail
from faregate.db.schema import projects
from faregate.errors import NotFound, Refused
from faregate.identity.access import require_member, require_owner
from faregate.identity.names import clean_name
from faregate.kit.ids import new_id

DEFAULT_PROJECT_NAME = "Default project"


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    organization_id: str
    name: str
    is_default: bool
    created_at: dt.datetime
    archived_at: dt.datetime | None


def _project(row: Any) -> Project:
    return Project(row.id, row.organization_id, row.name, bool(row.is_default), row.created_at,
                   row.archived_at)


def add_project(conn: sa.Connection, organization_id: str, name: str, *,
                is_default: bool = False) -> Project:
    """Insert a project with no access check (new organizations; see create_project)."""
    project = Project(new_id("proj"), organization_id, clean_name(name, what="project"),
                      is_default, dt.datetime.now(dt.UTC), None)
    conn.execute(projects.insert().values(
        id=project.id, organization_id=organization_id, name=project.name,
        is_default=is_default, created_at=project.created_at))
    return project


def get_default_project(conn: sa.Connection, organization_id: str) -> Project:
    row = conn.execute(sa.select(projects).where(
        projects.c.organization_id == organization_id,
        projects.c.is_default.is_(True))).first()
    if row is None:
        raise NotFound(f"Organization {organization_id!r} has no default project.")
    return _project(row)


def list_projects(conn: sa.Connection, organization_id: str, *, user_id: str) -> list[Project]:
    """Every project of the organization, the default first, archived ones included."""
    require_member(conn, organization_id, user_id)
    rows = conn.execute(sa.select(projects)
                        .where(projects.c.organization_id == organization_id)
                        .order_by(projects.c.is_default.desc(), projects.c.created_at,
                                  projects.c.id))
    return [_project(r) for r in rows]


def get_project(conn: sa.Connection, organization_id: str, project_id: str, *,
                user_id: str) -> Project:
    require_member(conn, organization_id, user_id)
    return _load(conn, organization_id, project_id)


def _load(conn: sa.Connection, organization_id: str, project_id: str) -> Project:
    row = conn.execute(sa.select(projects).where(
        projects.c.id == project_id, projects.c.organization_id == organization_id)).first()
    if row is None:
        raise NotFound(f"No project with id {project_id!r} in this organization.",
                       param="project_id", code="project_not_found")
    return _project(row)


def create_project(conn: sa.Connection, organization_id: str, *, user_id: str, name: str,
                   ip: str | None = None) -> Project:
    require_owner(conn, organization_id, user_id)
    project = add_project(conn, organization_id, name)
    trail.record(conn, action="project.created", actor=f"user:{user_id}", target=project.id,
                 organization_id=organization_id, ip=ip, detail={"name": project.name})
    return project


def update_project(conn: sa.Connection, organization_id: str, project_id: str, *,
                   user_id: str, name: str | None = None, archived: bool | None = None,
                   ip: str | None = None) -> Project:
    """Rename and/or archive (or unarchive) a project; the default one cannot be archived."""
    require_owner(conn, organization_id, user_id)
    project = _load(conn, organization_id, project_id)
    changes: dict[str, Any] = {}
    if name is not None and clean_name(name, what="project") != project.name:
        changes["name"] = clean_name(name, what="project")
    if archived is not None and archived != (project.archived_at is not None):
        if archived and project.is_default:
            raise Refused("The default project cannot be archived.",
                          code="default_project")
        changes["archived_at"] = dt.datetime.now(dt.UTC) if archived else None
    if not changes:
        return project
    conn.execute(projects.update().where(projects.c.id == project_id).values(**changes))
    actor = f"user:{user_id}"
    if "name" in changes:
        trail.record(conn, action="project.renamed", actor=actor, target=project_id,
                     organization_id=organization_id, ip=ip,
                     detail={"from": project.name, "to": changes["name"]})
    if "archived_at" in changes:
        trail.record(conn, action="project.archived" if archived else "project.unarchived",
                     actor=actor, target=project_id, organization_id=organization_id, ip=ip)
    return _load(conn, organization_id, project_id)
