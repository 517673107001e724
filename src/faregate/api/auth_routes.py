"""/api/auth: CSRF token, sign-up, sign-in, sign-out, email verification, password reset."""

from __future__ import annotations

import functools

from fastapi import APIRouter, BackgroundTasks, Response, status
from starlette.requests import Request

from faregate.api.deps import ClientInfo, Ctx, CurrentUser, MaybeUser
from faregate.api.schemas_auth import (
    AuthOut,
    CsrfOut,
    EmailIn,
    MessageOut,
    ResetConfirmIn,
    SignInIn,
    SignUpIn,
    TokenIn,
    UserOut,
    VerifiedOut,
)
from faregate.api.security import clear_session_cookies, set_csrf_cookie, set_session_cookies
from faregate.identity import accounts, recovery, signin
from faregate.identity.rules import AuthRules

router = APIRouter(prefix="/auth")

RESET_SENT = ("If an account exists for this address, we sent it a link to reset the "
              "password. Check your inbox.")


@router.get("/csrf", summary="Get a CSRF token (also set as the fg_csrf cookie)")
async def csrf(request: Request, response: Response, ctx: Ctx, user: MaybeUser) -> CsrfOut:
    token = set_csrf_cookie(response, request, ctx, user.session_id if user else "")
    return CsrfOut(csrf_token=token)


@router.post("/signup", status_code=status.HTTP_201_CREATED,
             summary="Create an account and sign in; sends a verification email")
async def signup(body: SignUpIn, request: Request, response: Response, ctx: Ctx,
                 client: ClientInfo, user: MaybeUser) -> AuthOut:
    done = await accounts.sign_up(
        ctx.db, email=body.email, password=body.password, name=body.name, ip=client.ip,
        user_agent=client.user_agent, previous_session_id=user.session_id if user else None,
        rules=AuthRules.from_settings(ctx.settings), secret=ctx.session_secret)
    token = set_session_cookies(response, request, ctx, session_id=done.session_id,
                                token=done.token)
    await ctx.email.send(done.email)
    return AuthOut(user=UserOut.of(done.user, email_verified=False), csrf_token=token)


@router.post("/signin", summary="Sign in with email and password (starts a new session)")
async def signin_(body: SignInIn, request: Request, response: Response, ctx: Ctx,
                  client: ClientInfo, user: MaybeUser) -> AuthOut:
    done = await signin.sign_in(
        ctx.db, email=body.email, password=body.password, ip=client.ip,
        user_agent=client.user_agent, previous_session_id=user.session_id if user else None,
        rules=AuthRules.from_settings(ctx.settings), secret=ctx.session_secret)
    token = set_session_cookies(response, request, ctx, session_id=done.session_id,
                                token=done.token)
    return AuthOut(user=UserOut.of(done.user, email_verified=done.email_verified),
                   csrf_token=token)


@router.post("/signout", status_code=status.HTTP_204_NO_CONTENT,
             summary="End the session (server-side) and clear its cookie")
async def signout(request: Request, response: Response, ctx: Ctx, client: ClientInfo,
                  user: MaybeUser) -> None:
    if user is not None:  # signing out twice is not an error
        await ctx.db.run(functools.partial(
            accounts.sign_out, session_id=user.session_id, user_id=user.user_id,
            organization_id=user.personal_organization_id, ip=client.ip))
    clear_session_cookies(response, request, ctx)


@router.post("/verify-email", summary="Verify the email address with the emailed token")
async def verify_email(body: TokenIn, ctx: Ctx, client: ClientInfo) -> VerifiedOut:
    user = await ctx.db.run(functools.partial(
        recovery.verify_email, token=body.token, ip=client.ip, secret=ctx.session_secret))
    return VerifiedOut(email=user.email, email_verified=True)


@router.post("/verify-email/resend", status_code=status.HTTP_202_ACCEPTED,
             summary="Send a new verification link to the signed-in user")
async def resend_verification(ctx: Ctx, client: ClientInfo, user: CurrentUser) -> MessageOut:
    message = await ctx.db.run(functools.partial(
        recovery.resend_verification, user_id=user.user_id, ip=client.ip,
        rules=AuthRules.from_settings(ctx.settings), secret=ctx.session_secret))
    await ctx.email.send(message)
    return MessageOut(message=f"We sent a new verification link to {user.email}.")


@router.post("/password-reset", status_code=status.HTTP_202_ACCEPTED,
             summary="Email a password reset link (same answer whether the account exists)")
async def password_reset(body: EmailIn, ctx: Ctx, client: ClientInfo,
                         background: BackgroundTasks) -> MessageOut:
    message = await ctx.db.run(functools.partial(
        recovery.request_password_reset, email=body.email, ip=client.ip,
        rules=AuthRules.from_settings(ctx.settings), secret=ctx.session_secret))
    if message is not None:  # sent after the response, which so takes as long either way
        background.add_task(ctx.email.send, message)
    return MessageOut(message=RESET_SENT)


@router.post("/password-reset/confirm", status_code=status.HTTP_204_NO_CONTENT,
             summary="Set a new password with the emailed token; ends every session")
async def password_reset_confirm(body: ResetConfirmIn, request: Request, response: Response,
                                 ctx: Ctx, client: ClientInfo) -> None:
    _, notice = await recovery.confirm_password_reset(
        ctx.db, token=body.token, password=body.password, ip=client.ip,
        rules=AuthRules.from_settings(ctx.settings), secret=ctx.session_secret)
    clear_session_cookies(response, request, ctx)
    await ctx.email.send(notice)
