"""Projects group API keys within an organization. Every organization has one default project,
which cannot be archived; members see the projects, owners create, rename and archive them,
and set their monthly budgets (a hard stop, kept as a guarded ledger account per month: see
ledger/limits.py) and the percentages of the budget at which the owners are emailed."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from types import EllipsisType
from typing import Any

import sqlalchemy as sa

from faregate.audit import trail
from faregate.db.schema import budget_alerts, projects
from faregate.errors import InvalidRequest, NotFound, Refused
from faregate.identity.access import require_member, require_owner
from faregate.identity.names import clean_name
from faregate.kit.ids import new_id
from faregate.kit.money import MoneyFormatError, nano_to_usd, usd_to_nano
from faregate.ledger.accounts import account_id, lock_available
from faregate.ledger.limits import (
    ensure_limit_account,
    limit_use,
    project_budget_code,
    resize_limit,
    window,
)

DEFAULT_PROJECT_NAME = "Default project"
DEFAULT_ALERT_PCTS: tuple[int, ...] = (50, 80, 100)
MAX_ALERT_PCTS = 10
MAX_BUDGET_NANO = usd_to_nano("100000000")


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    organization_id: str
    name: str
    is_default: bool
    created_at: dt.datetime
    archived_at: dt.datetime | None
    monthly_budget_nano: int | None = None
    budget_alert_pcts: tuple[int, ...] = DEFAULT_ALERT_PCTS


def _project(row: Any) -> Project:
    return Project(row.id, row.organization_id, row.name, bool(row.is_default), row.created_at,
                   row.archived_at, row.monthly_budget_nano, parse_pcts(row.budget_alert_pcts))


def parse_pcts(stored: str | None) -> tuple[int, ...]:
    """Alert thresholds as stored (comma-separated; NULL = the default; "" = none)."""
    if stored is None:
        return DEFAULT_ALERT_PCTS
    return tuple(int(x) for x in stored.split(",") if x)


def budget_from_usd(value: str | int | float) -> int:
    """A budget in USD (a decimal string, or a JSON number) as nano-USD, exactly. A JSON
    number arrives as a double: it is taken as written when it has at most 15 significant
    digits (a double keeps that many exactly), and refused otherwise."""
    if isinstance(value, float):
        written = Decimal(repr(value))
        if not written.is_finite() or len(written.as_tuple().digits) > 15:
            raise InvalidRequest("Send an amount with more than 15 digits as a string, e.g. "
                                 '"1234.567891234".', param="monthly_budget_usd")
        value = repr(value)
    try:
        nano = usd_to_nano(str(value))
    except MoneyFormatError:
        raise InvalidRequest("Enter the budget in dollars, like 100 or 12.50 (at most 9 "
                             "decimals).", param="monthly_budget_usd") from None
    if not 0 < nano <= MAX_BUDGET_NANO:
        raise InvalidRequest(f"The monthly budget must be more than $0 and at most "
                             f"${nano_to_usd(MAX_BUDGET_NANO)}; send null to remove it.",
                             param="monthly_budget_usd", code="invalid_value")
    return nano


def _check_pcts(pcts: list[int] | tuple[int, ...]) -> tuple[int, ...]:
    if len(pcts) > MAX_ALERT_PCTS:
        raise InvalidRequest(f"At most {MAX_ALERT_PCTS} alert thresholds.",
                             param="budget_alert_pcts", code="invalid_value")
    if any(isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 100 for p in pcts):
        raise InvalidRequest("Alert thresholds are whole percentages from 1 to 100.",
                             param="budget_alert_pcts", code="invalid_value")
    return tuple(sorted(set(pcts)))


@dataclass(frozen=True, slots=True)
class BudgetUse:
    """A project's budget this month: what the budget account says."""

    budget_nano: int
    spent_nano: int
    held_nano: int  # reserved by servers' leases for requests in flight
    period_start: dt.datetime
    resets_at: dt.datetime

    @property
    def remaining_nano(self) -> int:
        return max(0, self.budget_nano - self.spent_nano)


def budget_use(conn: sa.Connection, project: Project) -> BudgetUse | None:
    if project.monthly_budget_nano is None:
        return None
    w = window("month")
    use = limit_use(conn, project_budget_code(project.id, w))
    return BudgetUse(project.monthly_budget_nano, use.spent_nano if use else 0,
                     use.held_nano if use else 0, w.start, w.end)


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
                   ip: str | None = None,
                   monthly_budget_nano: int | EllipsisType | None = ...,
                   budget_alert_pcts: list[int] | EllipsisType | None = ...) -> Project:
    """Rename and/or archive (or unarchive) a project; the default one cannot be archived.
    Set (an amount), clear (None) or keep (...) its monthly budget and alert thresholds
    (None: the default 50, 80, 100 %)."""
    require_owner(conn, organization_id, user_id)
    project = _load(conn, organization_id, project_id)
    if not isinstance(monthly_budget_nano, EllipsisType) or \
            not isinstance(budget_alert_pcts, EllipsisType):
        _set_budget(conn, project, monthly_budget_nano, budget_alert_pcts,
                    actor=f"user:{user_id}", ip=ip)
    changes: dict[str, Any] = {}
    if name is not None and clean_name(name, what="project") != project.name:
        changes["name"] = clean_name(name, what="project")
    if archived is not None and archived != (project.archived_at is not None):
        if archived and project.is_default:
            raise Refused("The default project cannot be archived.",
                          code="default_project")
        changes["archived_at"] = dt.datetime.now(dt.UTC) if archived else None
    if not changes:
        return _load(conn, organization_id, project_id)
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


def _set_budget(conn: sa.Connection, project: Project, budget: int | EllipsisType | None,
                pcts: list[int] | EllipsisType | None, *, actor: str, ip: str | None) -> None:
    """Change a project's budget and thresholds. The current month's budget account is made
    (or resized) in the same transaction, so every process reserves against the new amount
    at once, whether or not its cached view of the project has caught up; a lowered budget
    gives back only what is neither spent nor held (resize_limit). Thresholds no longer
    crossed under the new budget are re-armed for this month."""
    new_budget = project.monthly_budget_nano if isinstance(budget, EllipsisType) else budget
    if new_budget is not None and not 0 < new_budget <= MAX_BUDGET_NANO:
        raise InvalidRequest("The monthly budget must be more than $0.",
                             param="monthly_budget_usd", code="invalid_value")
    stored: str | EllipsisType | None
    if isinstance(pcts, EllipsisType):
        new_pcts, stored = project.budget_alert_pcts, ...
    elif pcts is None:
        new_pcts, stored = DEFAULT_ALERT_PCTS, None
    else:
        new_pcts = _check_pcts(pcts)
        stored = ",".join(str(p) for p in new_pcts)
    if new_budget == project.monthly_budget_nano and new_pcts == project.budget_alert_pcts:
        return
    values: dict[str, Any] = {"monthly_budget_nano": new_budget}
    if not isinstance(stored, EllipsisType):
        values["budget_alert_pcts"] = stored
    conn.execute(projects.update().where(projects.c.id == project.id).values(**values))
    w = window("month")
    if new_budget is not None and new_budget != project.monthly_budget_nano:
        code = project_budget_code(project.id, w)
        ensure_limit_account(conn, code=code, organization_id=project.organization_id,
                             limit_nano=new_budget)
        resize_limit(conn, code, new_budget, actor=actor)
        use = limit_use(conn, code)
        spent = use.spent_nano if use else 0
        rearm = [p for p in range(1, 101) if p * new_budget > spent * 100]
        conn.execute(budget_alerts.delete().where(
            budget_alerts.c.project_id == project.id,
            budget_alerts.c.period_start == w.start.date().isoformat(),
            budget_alerts.c.threshold_pct.in_(rearm)))

    def shown(nano: int | None, p: tuple[int, ...]) -> dict[str, Any]:
        return {"monthly_budget_usd": nano_to_usd(nano) if nano is not None else None,
                "alert_pcts": list(p)}

    trail.record(conn, action="project.budget_changed", actor=actor, target=project.id,
                 organization_id=project.organization_id, ip=ip,
                 detail={"before": shown(project.monthly_budget_nano, project.budget_alert_pcts),
                         "after": shown(new_budget, new_pcts)})


def bring_budget_to_target(conn: sa.Connection, project_id: str, *,
                           actor: str = "worker") -> bool:
    """Move the project's budget account of this month to the budget as it stands now; True
    if anything moved. For what a lowered budget could not take back at once (servers' leases
    held it) and for an account a server opened from a view of the project a moment old. The
    account's row is locked before the budget is read: a change being made meanwhile resizes
    the account after this transaction (its resize waits for the lock), so this never undoes
    it."""
    code = project_budget_code(project_id, window("month"))
    try:
        acct = account_id(conn, code)
    except NotFound:
        return False
    lock_available(conn, acct)
    budget = conn.execute(sa.select(projects.c.monthly_budget_nano)
                          .where(projects.c.id == project_id)).scalar()
    use = limit_use(conn, code)
    if budget is None or use is None or use.limit_nano == int(budget):
        return False
    return resize_limit(conn, code, int(budget), actor=actor) != use.limit_nano
