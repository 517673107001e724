"""Invitations to join an organization, by a single-use link sent by email.

Only owners with a verified email address invite (so that the service cannot be used to mail
strangers from a throw-away account). The link works for a signed-in user with the invited
address; a new invitation to the same address replaces the pending one."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from faregate.audit import trail
from faregate.db.schema import invitations, memberships, organizations, users
from faregate.errors import InvalidRequest, NotFound, PermissionDenied, Refused
from faregate.identity.access import Role, require_owner
from faregate.identity.mail import invitation_email
from faregate.identity.orgs import OrgSummary, list_orgs
from faregate.identity.rules import HOUR_S, AuthRules
from faregate.identity.users import normalize_email
from faregate.kit.crypto import keyed_hash, new_token
from faregate.kit.ids import new_id
from faregate.notify.email import EmailMessage
from faregate.throttle import limiter

INVITE_SCOPE = "invite:org"
INVITATIONS_PER_ORG_PER_HOUR = 50
_MAX_TOKEN_CHARS = 200


@dataclass(frozen=True, slots=True)
class Invitation:
    id: str
    organization_id: str
    email: str
    role: Role
    invited_by: str  # user id
    created_at: dt.datetime
    expires_at: dt.datetime


@dataclass(frozen=True, slots=True)
class InvitationSent:
    invitation: Invitation
    email: EmailMessage = field(repr=False)  # holds the link


def _invitation(row: Any) -> Invitation:
    return Invitation(row.id, row.organization_id, row.email,
                      "owner" if row.role == "owner" else "member", row.invited_by,
                      row.created_at, row.expires_at)


def _hash(token: str, secret: bytes) -> str:
    return keyed_hash(secret, token, purpose="invitation")


def invite(conn: sa.Connection, organization_id: str, *, user_id: str, email: str, role: Role,
           ip: str | None, rules: AuthRules, secret: bytes) -> InvitationSent:
    require_owner(conn, organization_id, user_id)
    inviter = conn.execute(sa.select(users.c.email, users.c.email_verified_at)
                           .where(users.c.id == user_id)).one()
    if inviter.email_verified_at is None:
        raise PermissionDenied("Please verify your email address before inviting others.",
                               code="email_not_verified")
    email = normalize_email(email)
    member = conn.execute(
        sa.select(memberships.c.user_id).join(users, users.c.id == memberships.c.user_id)
        .where(memberships.c.organization_id == organization_id, users.c.email == email)
    ).first()
    if member is not None:
        raise Refused(f"{email} is already a member of this organization.", param="email",
                      code="already_member")
    limiter.check(conn, scope=INVITE_SCOPE, subject=organization_id,
                  limit=INVITATIONS_PER_ORG_PER_HOUR, window_s=HOUR_S, secret=secret,
                  message="This organization sent too many invitations.")
    limiter.record(conn, scope=INVITE_SCOPE, subject=organization_id, secret=secret)
    now = dt.datetime.now(dt.UTC)
    conn.execute(invitations.update()
                 .where(invitations.c.organization_id == organization_id,
                        invitations.c.email == email, invitations.c.accepted_at.is_(None),
                        invitations.c.revoked_at.is_(None))
                 .values(revoked_at=now))
    token = new_token()
    invitation = Invitation(new_id("inv"), organization_id, email, role, user_id, now,
                            now + dt.timedelta(seconds=rules.invitation_ttl_s))
    conn.execute(invitations.insert().values(
        id=invitation.id, organization_id=organization_id, email=email, role=role,
        token_hash=_hash(token, secret), invited_by=user_id, created_at=now,
        expires_at=invitation.expires_at))
    trail.record(conn, action="invitation.created", actor=f"user:{user_id}",
                 target=invitation.id, organization_id=organization_id, ip=ip,
                 detail={"email": email, "role": role})
    org_name = conn.execute(sa.select(organizations.c.name)
                            .where(organizations.c.id == organization_id)).scalar_one()
    message = invitation_email(email, organization=org_name, inviter=inviter.email, role=role,
                               link=rules.link("/invitations/accept", token),
                               ttl_s=rules.invitation_ttl_s)
    return InvitationSent(invitation, message)


def list_invitations(conn: sa.Connection, organization_id: str, *,
                     user_id: str) -> list[Invitation]:
    """The pending invitations (not accepted, revoked or expired), newest first."""
    require_owner(conn, organization_id, user_id)
    rows = conn.execute(
        sa.select(invitations)
        .where(invitations.c.organization_id == organization_id,
               invitations.c.accepted_at.is_(None), invitations.c.revoked_at.is_(None),
               invitations.c.expires_at > dt.datetime.now(dt.UTC))
        .order_by(invitations.c.created_at.desc(), invitations.c.id))
    return [_invitation(r) for r in rows]


def revoke_invitation(conn: sa.Connection, organization_id: str, invitation_id: str, *,
                      user_id: str, ip: str | None = None) -> None:
    """Withdraw an invitation (again: no effect); an accepted one cannot be withdrawn."""
    require_owner(conn, organization_id, user_id)
    row = conn.execute(sa.select(invitations).where(
        invitations.c.id == invitation_id,
        invitations.c.organization_id == organization_id)).first()
    if row is None:
        raise NotFound(f"No invitation with id {invitation_id!r} in this organization.",
                       param="invitation_id", code="invitation_not_found")
    if row.accepted_at is not None:
        raise Refused("This invitation was already accepted: remove the member instead.",
                      code="invitation_accepted")
    if row.revoked_at is not None:
        return
    conn.execute(invitations.update().where(invitations.c.id == invitation_id)
                 .values(revoked_at=dt.datetime.now(dt.UTC)))
    trail.record(conn, action="invitation.revoked", actor=f"user:{user_id}",
                 target=invitation_id, organization_id=organization_id, ip=ip,
                 detail={"email": row.email})


def _usable(conn: sa.Connection, token: str, secret: bytes, now: dt.datetime) -> Any:
    row = None
    if token and len(token) <= _MAX_TOKEN_CHARS:
        row = conn.execute(sa.select(invitations)
                           .where(invitations.c.token_hash == _hash(token, secret))).first()
    if row is None:
        raise InvalidRequest("This invitation link is not valid. Check that you copied all "
                             "of it.", param="token", code="invalid_token")
    if row.revoked_at is not None:
        raise InvalidRequest("This invitation was withdrawn. Ask the organization's owner for "
                             "a new one.", param="token", code="invitation_revoked")
    if row.accepted_at is not None:
        raise InvalidRequest("This invitation has already been accepted.", param="token",
                             code="invitation_used")
    if row.expires_at <= now:
        raise InvalidRequest("This invitation has expired. Ask the organization's owner for "
                             "a new one.", param="token", code="invitation_expired")
    return row


def accept_invitation(conn: sa.Connection, *, token: str, user_id: str, ip: str | None,
                      secret: bytes) -> OrgSummary:
    """Join the organization with the invited role (a member already keeps theirs)."""
    now = dt.datetime.now(dt.UTC)
    row = _usable(conn, token, secret, now)
    email = conn.execute(sa.select(users.c.email).where(users.c.id == user_id)).scalar_one()
    if email != row.email:
        raise PermissionDenied(f"This invitation is for {row.email}, but you are signed in as "
                               f"{email}. Sign in with the invited address to accept it.",
                               code="invitation_email_mismatch")
    accepted = conn.execute(invitations.update()
                            .where(invitations.c.id == row.id,
                                   invitations.c.accepted_at.is_(None),
                                   invitations.c.revoked_at.is_(None))
                            .values(accepted_at=now)).rowcount
    if accepted != 1:
        raise InvalidRequest("This invitation has already been accepted.", param="token",
                             code="invitation_used")
    already = conn.execute(sa.select(memberships.c.role).where(
        memberships.c.organization_id == row.organization_id,
        memberships.c.user_id == user_id)).first()
    if already is None:
        conn.execute(memberships.insert().values(organization_id=row.organization_id,
                                                 user_id=user_id, role=row.role,
                                                 created_at=now))
        trail.record(conn, action="member.added", actor=f"user:{user_id}", target=user_id,
                     organization_id=row.organization_id, ip=ip,
                     detail={"email": email, "role": row.role, "invitation_id": row.id,
                             "invited_by": row.invited_by})
    return next(o for o in list_orgs(conn, user_id) if o.id == row.organization_id)
