"""/admin/api/operators: admins list, create, change, disable and enable operators and reset
their TOTP. Enrolment data (TOTP secret, recovery codes) is in the response once."""

from __future__ import annotations

import asyncio
import functools

from fastapi import APIRouter, Response, status

from faregate.api.admin_deps import AdminOperator, Rules, SecretCipher
from faregate.api.admin_schemas import (
    OperatorCreateIn,
    OperatorEnrolledOut,
    OperatorListOut,
    OperatorOut,
    OperatorPatchIn,
)
from faregate.api.deps import ClientInfo, Ctx
from faregate.operators import accounts

router = APIRouter(prefix="/operators")


@router.get("", summary="List operators (admins only)")
async def list_operators(ctx: Ctx, admin: AdminOperator) -> OperatorListOut:
    found = await ctx.db.run(accounts.list_operators)
    return OperatorListOut(data=[OperatorOut.of(o) for o in found])


@router.post("", status_code=status.HTTP_201_CREATED,
             summary="Create an operator; the TOTP enrolment and recovery codes are shown once")
async def create_operator(body: OperatorCreateIn, response: Response, ctx: Ctx,
                          client: ClientInfo, admin: AdminOperator, rules: Rules,
                          cipher: SecretCipher) -> OperatorEnrolledOut:
    password_hash = await asyncio.to_thread(
        functools.partial(accounts.hash_new_password, body.password, email=body.email,
                          min_length=rules.password_min_length))
    made = await ctx.db.run(functools.partial(
        accounts.create_operator, email=body.email, role=body.role,
        password_hash=password_hash, name=body.name, cipher=cipher,
        secret=ctx.session_secret, actor=admin.actor, ip=client.ip))
    response.headers["cache-control"] = "no-store"
    return OperatorEnrolledOut.of(made)


@router.patch("/{operator_id}", summary="Change an operator's role or name, disable or "
              "enable them (the last enabled admin stays)")
async def patch_operator(operator_id: str, body: OperatorPatchIn, ctx: Ctx,
                         client: ClientInfo, admin: AdminOperator) -> OperatorOut:
    change = accounts.OperatorChange(role=body.role, disabled=body.disabled, name=body.name)
    found = await ctx.db.run(functools.partial(
        accounts.change_operator, operator_id=operator_id, change=change, actor=admin.actor,
        ip=client.ip))
    return OperatorOut.of(found)


@router.post("/{operator_id}/reset-totp",
             summary="Give an operator a new TOTP secret and recovery codes (shown once); "
             "ends their sessions")
async def reset_totp(operator_id: str, response: Response, ctx: Ctx, client: ClientInfo,
                     admin: AdminOperator, cipher: SecretCipher) -> OperatorEnrolledOut:
    done = await ctx.db.run(functools.partial(
        accounts.reset_totp, operator_id=operator_id, cipher=cipher, secret=ctx.session_secret,
        actor=admin.actor, ip=client.ip))
    response.headers["cache-control"] = "no-store"
    return OperatorEnrolledOut.of(done)
