"""/api/me: the signed-in user, their password and sessions."""

from __future__ import annotations

import functools

from fastapi import APIRouter, Response, status
from starlette.requests import Request

from faregate.api.deps import ClientInfo, Ctx, CurrentUser
from faregate.api.schemas_auth import (
    MeOut,
    MePatchIn,
    PasswordChangeIn,
    SessionListOut,
    SessionOut,
)
from faregate.api.security import clear_session_cookies
from faregate.identity import accounts, profile
from faregate.identity.rules import AuthRules

router = APIRouter(prefix="/me")


@router.get("", summary="The signed-in user")
async def me(ctx: Ctx, user: CurrentUser) -> MeOut:
    found = await ctx.db.run(profile.get_profile, user.user_id)
    return MeOut.of(found)


@router.patch("", summary="Change your settings: the dashboard language")
async def patch_me(body: MePatchIn, ctx: Ctx, user: CurrentUser) -> MeOut:
    await ctx.db.run(profile.set_locale, user.user_id, body.locale)
    return MeOut.of(await ctx.db.run(profile.get_profile, user.user_id))


@router.post("/password", status_code=status.HTTP_204_NO_CONTENT,
             summary="Change the password; signs out every other session")
async def change_password(body: PasswordChangeIn, ctx: Ctx, client: ClientInfo,
                          user: CurrentUser) -> None:
    notice = await accounts.change_password(
        ctx.db, user_id=user.user_id, email=user.email, session_id=user.session_id,
        current_password=body.current_password, new_password=body.new_password, ip=client.ip,
        rules=AuthRules.from_settings(ctx.settings), secret=ctx.session_secret)
    await ctx.email.send(notice)


@router.get("/sessions", summary="The signed-in user's live sessions")
async def sessions(ctx: Ctx, user: CurrentUser) -> SessionListOut:
    found = await ctx.db.run(functools.partial(
        profile.list_user_sessions, user_id=user.user_id, current_session_id=user.session_id,
        idle_s=ctx.settings.session_idle_s))
    return SessionListOut(data=[SessionOut.of(s) for s in found])


@router.delete("/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Sign out one of your sessions")
async def end_session(session_id: str, request: Request, response: Response, ctx: Ctx,
                      client: ClientInfo, user: CurrentUser) -> None:
    await ctx.db.run(functools.partial(
        profile.end_user_session, user_id=user.user_id, session_id=session_id,
        organization_id=user.personal_organization_id, ip=client.ip))
    if session_id == user.session_id:
        clear_session_cookies(response, request, ctx)
