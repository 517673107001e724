"""Organizations and their members. Members see an organization, its members and projects;
owners rename it, change roles, remove members, invite, and read its audit trail.

An organization always keeps an owner, and the user whose personal organization it is stays
an owner of it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from faregate.audit import trail
from faregate.db.schema import memberships, organizations, users
from faregate.errors import NotFound, PermissionDenied, Refused
from faregate.identity.access import Role, require_member, require_owner
from faregate.identity.names import clean_name
from faregate.ledger.accounts import balance, org_account_id


@dataclass(frozen=True, slots=True)
class OrgSummary:
    id: str
    name: str
    role: Role
    personal: bool  # the signed-in user's own organization


@dataclass(frozen=True, slots=True)
class OrgDetail:
    id: str
    name: str
    role: Role
    personal: bool
    created_at: dt.datetime
    balance_nano: int  # credits - debits
    available_nano: int  # less what requests in flight hold
    request_logging_until: dt.datetime | None = None  # an operator logs its requests until then
    deactivated_at: dt.datetime | None = None  # by an operator: /v1 refuses its keys
    deactivated_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Member:
    user_id: str
    email: str
    role: Role
    joined_at: dt.datetime
    personal: bool  # this is the member's personal organization


def _role(value: str) -> Role:
    return "owner" if value == "owner" else "member"


def list_orgs(conn: sa.Connection, user_id: str) -> list[OrgSummary]:
    """The user's organizations: the personal one first, then by name."""
    personal = conn.execute(sa.select(users.c.organization_id)
                            .where(users.c.id == user_id)).scalar()
    rows = conn.execute(
        sa.select(organizations.c.id, organizations.c.name, memberships.c.role)
        .join(memberships, memberships.c.organization_id == organizations.c.id)
        .where(memberships.c.user_id == user_id)
        .order_by(organizations.c.name, organizations.c.id)).all()
    found = [OrgSummary(r.id, r.name, _role(r.role), r.id == personal) for r in rows]
    return sorted(found, key=lambda o: not o.personal)


def get_org(conn: sa.Connection, organization_id: str, *, user_id: str) -> OrgDetail:
    role = require_member(conn, organization_id, user_id)
    org = conn.execute(sa.select(organizations).where(organizations.c.id == organization_id)
                       ).one()
    personal = conn.execute(sa.select(users.c.organization_id)
                            .where(users.c.id == user_id)).scalar() == organization_id
    money = balance(conn, org_account_id(conn, organization_id))
    logging_until = org.request_logging_until
    if logging_until is not None and logging_until <= dt.datetime.now(dt.UTC):
        logging_until = None
    return OrgDetail(org.id, org.name, role, personal, org.created_at, money.balance_nano,
                     money.available_nano, logging_until, org.deactivated_at,
                     org.deactivated_reason)


def rename_org(conn: sa.Connection, organization_id: str, *, user_id: str, name: str,
               ip: str | None = None) -> OrgDetail:
    require_owner(conn, organization_id, user_id)
    new_name = clean_name(name, what="organization")
    old_name = conn.execute(sa.select(organizations.c.name)
                            .where(organizations.c.id == organization_id)).scalar_one()
    if new_name != old_name:
        conn.execute(organizations.update().where(organizations.c.id == organization_id)
                     .values(name=new_name))
        trail.record(conn, action="org.renamed", actor=f"user:{user_id}",
                     target=organization_id, organization_id=organization_id, ip=ip,
                     detail={"from": old_name, "to": new_name})
    return get_org(conn, organization_id, user_id=user_id)


def _members(conn: sa.Connection, organization_id: str, *,
             lock: bool = False) -> list[Member]:
    q = (sa.select(memberships.c.user_id, users.c.email, memberships.c.role,
                   memberships.c.created_at, users.c.organization_id)
         .join(users, users.c.id == memberships.c.user_id)
         .where(memberships.c.organization_id == organization_id)
         .order_by(memberships.c.created_at, memberships.c.user_id))
    if lock:  # PostgreSQL: one role change or removal per organization at a time
        q = q.with_for_update(of=memberships)
    return [Member(r.user_id, r.email, _role(r.role), r.created_at,
                   r.organization_id == organization_id) for r in conn.execute(q)]


def list_members(conn: sa.Connection, organization_id: str, *, user_id: str) -> list[Member]:
    require_member(conn, organization_id, user_id)
    return _members(conn, organization_id)


def _target(members: list[Member], member_id: str) -> Member:
    for member in members:
        if member.user_id == member_id:
            return member
    raise NotFound(f"No member with user id {member_id!r} in this organization.",
                   param="user_id", code="member_not_found")


def _keep_an_owner(members: list[Member], target: Member, action: str) -> None:
    owners = [m for m in members if m.role == "owner"]
    if target.role == "owner" and len(owners) == 1:
        raise Refused(f"{target.email} is the last owner of this organization: make another "
                      f"member an owner first.", code="last_owner")
    if target.personal:
        raise Refused(f"This is {target.email}'s personal organization: they cannot be "
                      f"{action}.", code="personal_organization")


def change_role(conn: sa.Connection, organization_id: str, member_id: str, *, user_id: str,
                role: Role, ip: str | None = None) -> Member:
    require_owner(conn, organization_id, user_id)
    members = _members(conn, organization_id, lock=True)
    target = _target(members, member_id)
    if target.role == role:
        return target
    if role != "owner":
        _keep_an_owner(members, target, "made a member")
    conn.execute(memberships.update().where(memberships.c.organization_id == organization_id,
                                            memberships.c.user_id == member_id)
                 .values(role=role))
    trail.record(conn, action="member.role_changed", actor=f"user:{user_id}", target=member_id,
                 organization_id=organization_id, ip=ip,
                 detail={"email": target.email, "from": target.role, "to": role})
    return _target(_members(conn, organization_id), member_id)


def remove_member(conn: sa.Connection, organization_id: str, member_id: str, *, user_id: str,
                  ip: str | None = None) -> None:
    """An owner removes anyone; a member may remove (only) themselves."""
    role = require_member(conn, organization_id, user_id)
    if role != "owner" and member_id != user_id:
        raise PermissionDenied("Only an owner of this organization can remove other members.",
                               code="owner_required")
    members = _members(conn, organization_id, lock=True)
    target = _target(members, member_id)
    _keep_an_owner(members, target, "removed")
    conn.execute(memberships.delete().where(memberships.c.organization_id == organization_id,
                                            memberships.c.user_id == member_id))
    trail.record(conn, action="member.removed", actor=f"user:{user_id}", target=member_id,
                 organization_id=organization_id, ip=ip,
                 detail={"email": target.email, "role": target.role,
                         "left": member_id == user_id})


@dataclass(frozen=True, slots=True)
class AuditPage:
    events: list[trail.AuditEvent]
    has_more: bool

    @property
    def next_before(self) -> int | None:
        return self.events[-1].id if self.has_more and self.events else None


def list_org_events(conn: sa.Connection, organization_id: str, *, user_id: str,
                    limit: int = 50, before_id: int | None = None) -> AuditPage:
    """A page of the organization's audit trail, newest first (owners only)."""
    require_owner(conn, organization_id, user_id)
    events = trail.list_events(conn, organization_id=organization_id, limit=limit + 1,
                               before_id=before_id)
    return AuditPage(events[:limit], len(events) > limit)
