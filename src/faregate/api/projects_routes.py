"""/api/orgs/{org_id}/projects: members list them, owners create, rename and archive."""

from __future__ import annotations

import functools

from fastapi import APIRouter, status

from faregate.api.deps import ClientInfo, Ctx, CurrentUser
from faregate.api.schemas_orgs import ProjectIn, ProjectListOut, ProjectOut, ProjectPatchIn
from faregate.identity import projects

router = APIRouter(prefix="/orgs/{org_id}/projects")


@router.get("", summary="The organization's projects (the default first)")
async def list_projects(org_id: str, ctx: Ctx, user: CurrentUser) -> ProjectListOut:
    found = await ctx.db.run(functools.partial(
        projects.list_projects, organization_id=org_id, user_id=user.user_id))
    return ProjectListOut(data=[ProjectOut.of(p) for p in found])


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a project (owner)")
async def create_project(org_id: str, body: ProjectIn, ctx: Ctx, client: ClientInfo,
                         user: CurrentUser) -> ProjectOut:
    made = await ctx.db.run(functools.partial(
        projects.create_project, organization_id=org_id, user_id=user.user_id, name=body.name,
        ip=client.ip))
    return ProjectOut.of(made)


@router.get("/{project_id}", summary="One project")
async def get_project(org_id: str, project_id: str, ctx: Ctx,
                      user: CurrentUser) -> ProjectOut:
    found = await ctx.db.run(functools.partial(
        projects.get_project, organization_id=org_id, project_id=project_id, user_id=user.user_id))
    return ProjectOut.of(found)


@router.patch("/{project_id}",
              summary="Rename or (un)archive a project (owner; not the default project)")
async def update_project(org_id: str, project_id: str, body: ProjectPatchIn, ctx: Ctx,
                         client: ClientInfo, user: CurrentUser) -> ProjectOut:
    found = await ctx.db.run(functools.partial(
        projects.update_project, organization_id=org_id, project_id=project_id,
        user_id=user.user_id, name=body.name, archived=body.archived, ip=client.ip))
    return ProjectOut.of(found)
