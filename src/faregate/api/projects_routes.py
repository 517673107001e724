"""/api/orgs/{org_id}/projects: members list them, owners create, rename and archive them and
set their monthly budgets and alert thresholds."""

from __future__ import annotations

import datetime as dt
import functools
from types import EllipsisType
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, status
from pydantic import BaseModel, Field, StrictFloat, StrictInt, StringConstraints

from faregate.api.deps import ClientInfo, Ctx, CurrentUser
from faregate.api.schemas_orgs import MoneyOut, ProjectIn, ProjectOut, ProjectPatchIn
from faregate.identity import projects

router = APIRouter(prefix="/orgs/{org_id}/projects")


class BudgetOut(BaseModel):
    monthly_budget: MoneyOut
    period_start: dt.datetime = Field(description="This month's start (UTC).")
    resets_at: dt.datetime = Field(description="When the budget starts afresh (UTC).")
    spent: MoneyOut = Field(description="Charged against the budget this month.")
    held: MoneyOut = Field(description="Reserved by servers for requests in flight.")
    remaining: MoneyOut


class ProjectBudgetOut(ProjectOut):
    budget: BudgetOut | None = Field(description="null when the project has no budget.")
    budget_alert_pcts: list[int] = Field(description="Percentages of the budget at which the "
                                         "owners are emailed, once each per month.")

    @classmethod
    def of_project(cls, p: projects.Project, use: projects.BudgetUse | None
                   ) -> ProjectBudgetOut:
        budget = None if use is None else BudgetOut(
            monthly_budget=MoneyOut.of(use.budget_nano), period_start=use.period_start,
            resets_at=use.resets_at, spent=MoneyOut.of(use.spent_nano),
            held=MoneyOut.of(use.held_nano), remaining=MoneyOut.of(use.remaining_nano))
        return cls(**ProjectOut.of(p).model_dump(), budget=budget,
                   budget_alert_pcts=list(p.budget_alert_pcts))


class ProjectListOut(BaseModel):
    data: list[ProjectBudgetOut]


class ProjectBudgetPatchIn(ProjectPatchIn):
    monthly_budget_usd: Annotated[str, StringConstraints(strict=True, max_length=40)] | \
        StrictInt | StrictFloat | None = Field(
            default=None, description='A hard monthly (UTC calendar) limit in USD, e.g. "100" '
            "or \"12.50\" (a string is exact; a number must have at most 15 digits); null "
            "removes it.")
    budget_alert_pcts: list[StrictInt] | None = Field(
        default=None, max_length=100, description="Up to 10 percentages (1 to 100) of the "
        "budget at which the owners are emailed; null restores the default [50, 80, 100], "
        "[] turns the emails off.")


def _view(conn: sa.Connection, p: projects.Project) -> ProjectBudgetOut:
    return ProjectBudgetOut.of_project(p, projects.budget_use(conn, p))


@router.get("", summary="The organization's projects (the default first)")
async def list_projects(org_id: str, ctx: Ctx, user: CurrentUser) -> ProjectListOut:
    def run(conn: sa.Connection) -> ProjectListOut:
        found = projects.list_projects(conn, org_id, user_id=user.user_id)
        return ProjectListOut(data=[_view(conn, p) for p in found])
    return await ctx.db.run(run)


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a project (owner)")
async def create_project(org_id: str, body: ProjectIn, ctx: Ctx, client: ClientInfo,
                         user: CurrentUser) -> ProjectBudgetOut:
    made = await ctx.db.run(functools.partial(
        projects.create_project, organization_id=org_id, user_id=user.user_id, name=body.name,
        ip=client.ip))
    return ProjectBudgetOut.of_project(made, None)


@router.get("/{project_id}", summary="One project, with its budget and this month's spending")
async def get_project(org_id: str, project_id: str, ctx: Ctx,
                      user: CurrentUser) -> ProjectBudgetOut:
    def run(conn: sa.Connection) -> ProjectBudgetOut:
        return _view(conn, projects.get_project(conn, org_id, project_id, user_id=user.user_id))
    return await ctx.db.run(run)


@router.patch("/{project_id}",
              summary="Rename or (un)archive a project (not the default one), or set its "
              "monthly budget and alert thresholds (owner)")
async def update_project(org_id: str, project_id: str, body: ProjectBudgetPatchIn, ctx: Ctx,
                         client: ClientInfo, user: CurrentUser) -> ProjectBudgetOut:
    given = body.model_fields_set
    budget: int | EllipsisType | None = ...
    if "monthly_budget_usd" in given:
        amount = body.monthly_budget_usd
        budget = None if amount is None else projects.budget_from_usd(amount)
    pcts: list[int] | EllipsisType | None = ...
    if "budget_alert_pcts" in given:
        pcts = body.budget_alert_pcts

    def run(conn: sa.Connection) -> ProjectBudgetOut:
        return _view(conn, projects.update_project(
            conn, org_id, project_id, user_id=user.user_id, name=body.name,
            archived=body.archived, ip=client.ip, monthly_budget_nano=budget,
            budget_alert_pcts=pcts))
    return await ctx.db.run(run)
