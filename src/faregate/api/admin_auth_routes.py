"""/admin/api/auth and /admin/api/me: operator sign-in (password + TOTP), sign-out, who am I,
own password."""

from __future__ import annotations

import functools

from fastapi import APIRouter, Response, status
from starlette.requests import Request

from faregate.api.admin_deps import CurrentOperator, MaybeOperator, Rules, SecretCipher
from faregate.api.admin_schemas import (
    CsrfOut,
    OperatorAuthOut,
    OperatorOut,
    OperatorPasswordIn,
    OperatorSignInIn,
)
from faregate.api.admin_security import (
    clear_admin_session_cookies,
    set_admin_csrf_cookie,
    set_admin_session_cookies,
)
from faregate.api.deps import ClientInfo, Ctx
from faregate.operators import accounts, self_service, signin

router = APIRouter()


@router.get("/auth/csrf", summary="Get a CSRF token (also set as the fg_admin_csrf cookie)")
async def csrf(request: Request, response: Response, ctx: Ctx,
               operator: MaybeOperator) -> CsrfOut:
    token = set_admin_csrf_cookie(response, request, ctx,
                                  operator.session_id if operator else "")
    return CsrfOut(csrf_token=token)


@router.post("/auth/signin", summary="Sign in with email, password and a TOTP code (or a "
             "recovery code)")
async def signin_(body: OperatorSignInIn, request: Request, response: Response, ctx: Ctx,
                  client: ClientInfo, operator: MaybeOperator, rules: Rules,
                  cipher: SecretCipher) -> OperatorAuthOut:
    done = await signin.sign_in(
        ctx.db, email=body.email, password=body.password,
        factor=signin.SecondFactor(body.totp_code, body.recovery_code), ip=client.ip,
        user_agent=client.user_agent,
        previous_session_id=operator.session_id if operator else None, rules=rules,
        secret=ctx.session_secret, cipher=cipher)
    token = set_admin_session_cookies(response, request, ctx,
                                      session_id=done.principal.session_id, token=done.token)
    found = await ctx.db.run(accounts.get_operator, done.principal.operator_id)
    return OperatorAuthOut(operator=OperatorOut.of(found), csrf_token=token,
                           used_recovery_code=done.used_recovery_code,
                           recovery_codes_left=done.recovery_codes_left)


@router.post("/auth/signout", status_code=status.HTTP_204_NO_CONTENT,
             summary="End the operator session (server-side) and clear its cookie")
async def signout(request: Request, response: Response, ctx: Ctx, client: ClientInfo,
                  operator: MaybeOperator) -> None:
    if operator is not None:  # signing out twice is not an error
        await ctx.db.run(functools.partial(signin.sign_out, principal=operator, ip=client.ip))
    clear_admin_session_cookies(response, request, ctx)


@router.get("/me", summary="The signed-in operator")
async def me(ctx: Ctx, operator: CurrentOperator) -> OperatorOut:
    return OperatorOut.of(await ctx.db.run(accounts.get_operator, operator.operator_id))


@router.post("/me/password", status_code=status.HTTP_204_NO_CONTENT,
             summary="Change your own password; ends your other sessions")
async def change_password(body: OperatorPasswordIn, ctx: Ctx, client: ClientInfo,
                          operator: CurrentOperator, rules: Rules) -> None:
    await self_service.change_password(
        ctx.db, operator, current_password=body.current_password,
        new_password=body.new_password, ip=client.ip, rules=rules, secret=ctx.session_secret)
