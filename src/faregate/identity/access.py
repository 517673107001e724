"""Who may see and change an organization: members see it, owners change it.

To someone who is not a member an organization does not exist (404, the same answer as for an
id that was never issued), so ids cannot be probed."""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa

from faregate.db.schema import memberships, users
from faregate.errors import NotFound, PermissionDenied

Role = Literal["owner", "member"]
ROLES: tuple[Role, ...] = ("owner", "member")


def role_of(conn: sa.Connection, organization_id: str, user_id: str) -> Role | None:
    role = conn.execute(sa.select(memberships.c.role).where(
        memberships.c.organization_id == organization_id,
        memberships.c.user_id == user_id)).scalar()
    return None if role is None else ("owner" if role == "owner" else "member")


def require_member(conn: sa.Connection, organization_id: str, user_id: str) -> Role:
    """The user's role in the organization; NotFound when they are not a member."""
    role = role_of(conn, organization_id, user_id)
    if role is None:
        raise NotFound(f"No organization with id {organization_id!r}.", param="org_id",
                       code="organization_not_found")
    return role


def require_owner(conn: sa.Connection, organization_id: str, user_id: str) -> None:
    """NotFound for a non-member; PermissionDenied for a member who is not an owner."""
    if require_member(conn, organization_id, user_id) != "owner":
        raise PermissionDenied("Only an owner of this organization can do this.",
                               code="owner_required")


def owner_emails(conn: sa.Connection, organization_id: str) -> list[str]:
    """Where billing notices go."""
    return [str(e) for e in conn.execute(
        sa.select(users.c.email).join(memberships, memberships.c.user_id == users.c.id)
        .where(memberships.c.organization_id == organization_id,
               memberships.c.role == "owner").order_by(users.c.email)).scalars()]
