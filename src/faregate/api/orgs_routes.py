"""/api/orgs: organizations, members and invitations; /api/invitations/accept.

To a non-member an organization does not exist (404); a member who is not an owner gets 403
where an owner is needed."""

from __future__ import annotations

import functools

import sqlalchemy as sa
from fastapi import APIRouter, status

from faregate.api.context import ApiContext
from faregate.api.deps import ClientInfo, Ctx, CurrentUser
from faregate.api.schemas_orgs import (
    AcceptIn,
    InvitationIn,
    InvitationListOut,
    InvitationOut,
    MemberListOut,
    MemberOut,
    OrgDetailOut,
    OrgListOut,
    OrgOut,
    OrgPatchIn,
    RoleIn,
)
from faregate.api_keys import self_service
from faregate.identity import invitations, orgs
from faregate.identity.rules import AuthRules

router = APIRouter()


@router.get("/orgs", summary="Your organizations")
async def list_orgs(ctx: Ctx, user: CurrentUser) -> OrgListOut:
    found = await ctx.db.run(orgs.list_orgs, user.user_id)
    return OrgListOut(data=[OrgOut.of(o) for o in found])


@router.get("/orgs/{org_id}", summary="An organization, with your role and its balance")
async def get_org(org_id: str, ctx: Ctx, user: CurrentUser) -> OrgDetailOut:
    found = await ctx.db.run(functools.partial(
        orgs.get_org, organization_id=org_id, user_id=user.user_id))
    return _detail(found, ctx)


@router.patch("/orgs/{org_id}", summary="Rename an organization (owner)")
async def rename_org(org_id: str, body: OrgPatchIn, ctx: Ctx, client: ClientInfo,
                     user: CurrentUser) -> OrgDetailOut:
    found = await ctx.db.run(functools.partial(
        orgs.rename_org, organization_id=org_id, user_id=user.user_id, name=body.name,
        ip=client.ip))
    return _detail(found, ctx)


def _detail(found: orgs.OrgDetail, ctx: ApiContext) -> OrgDetailOut:
    return OrgDetailOut.of(found, log_all=ctx.settings.request_log == "all",
                           retention_days=ctx.settings.request_log_retention_days)


@router.get("/orgs/{org_id}/members", summary="The organization's members")
async def list_members(org_id: str, ctx: Ctx, user: CurrentUser) -> MemberListOut:
    found = await ctx.db.run(functools.partial(
        orgs.list_members, organization_id=org_id, user_id=user.user_id))
    return MemberListOut(data=[MemberOut.of(m) for m in found])


@router.patch("/orgs/{org_id}/members/{user_id}", summary="Change a member's role (owner)")
async def change_role(org_id: str, user_id: str, body: RoleIn, ctx: Ctx, client: ClientInfo,
                      user: CurrentUser) -> MemberOut:
    found = await ctx.db.run(functools.partial(
        orgs.change_role, organization_id=org_id, member_id=user_id, user_id=user.user_id,
        role=body.role, ip=client.ip))
    return MemberOut.of(found)


@router.delete("/orgs/{org_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Remove a member (owner), or leave the organization yourself")
async def remove_member(org_id: str, user_id: str, ctx: Ctx, client: ClientInfo,
                        user: CurrentUser) -> None:
    def run(conn: sa.Connection) -> None:
        orgs.remove_member(conn, organization_id=org_id, member_id=user_id,
                           user_id=user.user_id, ip=client.ip)
        # Their keys in this organization stop working with their membership.
        self_service.revoke_member_keys(conn, organization_id=org_id, member_id=user_id,
                                        actor=f"user:{user.user_id}", ip=client.ip)
    await ctx.db.run(run)


@router.post("/orgs/{org_id}/invitations", status_code=status.HTTP_201_CREATED,
             summary="Invite someone by email (owner)")
async def invite(org_id: str, body: InvitationIn, ctx: Ctx, client: ClientInfo,
                 user: CurrentUser) -> InvitationOut:
    sent = await ctx.db.run(functools.partial(
        invitations.invite, organization_id=org_id, user_id=user.user_id, email=body.email,
        role=body.role, ip=client.ip, rules=AuthRules.from_settings(ctx.settings),
        secret=ctx.session_secret))
    await ctx.email.send(sent.email)
    return InvitationOut.of(sent.invitation)


@router.get("/orgs/{org_id}/invitations", summary="Pending invitations (owner)")
async def list_invitations(org_id: str, ctx: Ctx, user: CurrentUser) -> InvitationListOut:
    found = await ctx.db.run(functools.partial(
        invitations.list_invitations, organization_id=org_id, user_id=user.user_id))
    return InvitationListOut(data=[InvitationOut.of(i) for i in found])


@router.delete("/orgs/{org_id}/invitations/{invitation_id}",
               status_code=status.HTTP_204_NO_CONTENT, summary="Withdraw an invitation (owner)")
async def revoke_invitation(org_id: str, invitation_id: str, ctx: Ctx, client: ClientInfo,
                            user: CurrentUser) -> None:
    await ctx.db.run(functools.partial(
        invitations.revoke_invitation, organization_id=org_id, invitation_id=invitation_id,
        user_id=user.user_id, ip=client.ip))


@router.post("/invitations/accept", summary="Accept an invitation (as the invited address)")
async def accept_invitation(body: AcceptIn, ctx: Ctx, client: ClientInfo,
                            user: CurrentUser) -> OrgOut:
    joined = await ctx.db.run(functools.partial(
        invitations.accept_invitation, token=body.token, user_id=user.user_id, ip=client.ip,
        secret=ctx.session_secret))
    return OrgOut.of(joined)
