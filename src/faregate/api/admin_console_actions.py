"""/admin/api changes to organizations and users (admins only): grant, adjust and refund
credit, deactivate and reactivate, reset a phone number, issue redemption codes — and support
notes, the one thing a support operator may write. Each is one audited service call
(faregate.console)."""

from __future__ import annotations

import functools

from fastapi import APIRouter, Response, status

from faregate.api.admin_console_schemas import (
    ActivationOut,
    AdjustIn,
    BalanceOut,
    CodesIn,
    CodesOut,
    CreditChangeOut,
    GrantIn,
    MoneyOut,
    NoteIn,
    NoteOut,
    ReasonIn,
    RefundIn,
    RefundOut,
    parse_usd,
    utc,
)
from faregate.api.admin_deps import AdminOperator, CurrentOperator
from faregate.api.billing_routes import processor_of
from faregate.api.deps import ClientInfo, Ctx
from faregate.billing.amounts import NANO_PER_CENT
from faregate.console import actions, notes
from faregate.errors import InvalidRequest

router = APIRouter()


def _positive(text: str, param: str = "amount_usd") -> int:
    nano = parse_usd(text, param)
    if nano <= 0:
        raise InvalidRequest("The amount must be more than zero.", param=param)
    return nano


@router.post("/organizations/{org_id}/grant", summary="Grant promotional credit (a ledger "
             "transfer with a reason)")
async def grant(org_id: str, body: GrantIn, ctx: Ctx, client: ClientInfo,
                admin: AdminOperator) -> CreditChangeOut:
    done = await ctx.db.run(functools.partial(
        actions.grant_credit, organization_id=org_id, amount_nano=_positive(body.amount_usd),
        reason=body.reason, actor=admin.actor, ip=client.ip,
        idempotency_key=body.idempotency_key, expires_at=utc(body.expires_at)))
    return CreditChangeOut.of(done, organization_credited=True)


@router.post("/organizations/{org_id}/adjust", summary="Adjust the balance up or down (never "
             "below what is available)")
async def adjust(org_id: str, body: AdjustIn, ctx: Ctx, client: ClientInfo,
                 admin: AdminOperator) -> CreditChangeOut:
    amount = parse_usd(body.amount_usd)
    done = await ctx.db.run(functools.partial(
        actions.adjust_credit, organization_id=org_id, amount_nano=amount, reason=body.reason,
        actor=admin.actor, ip=client.ip, idempotency_key=body.idempotency_key))
    return CreditChangeOut.of(done, organization_credited=amount > 0)


@router.post("/organizations/{org_id}/refund", summary="Refund a top-up to the card and take "
             "its credit back")
async def refund(org_id: str, body: RefundIn, ctx: Ctx, client: ClientInfo,
                 admin: AdminOperator) -> RefundOut:
    amount = _positive(body.amount_usd) if body.amount_usd is not None else None
    if amount is not None and amount % NANO_PER_CENT:
        raise InvalidRequest("Refunds are in whole cents.", param="amount_usd")
    done = await actions.refund_to_card(
        ctx.db, processor_of(ctx), organization_id=org_id, payment_id=body.payment_id,
        amount_nano=amount, reason=body.reason, idempotency_key=body.idempotency_key,
        actor=admin.actor, ip=client.ip)
    return RefundOut(payment_id=done.payment_id, before=BalanceOut.of(done.before),
                     after=BalanceOut.of(done.after), owed=MoneyOut.of(done.owed_nano))


async def _org_active(org_id: str, active: bool, body: ReasonIn, ctx: Ctx, ip: str,
                      actor: str) -> ActivationOut:
    return ActivationOut.of(await ctx.db.run(functools.partial(
        actions.set_org_active, organization_id=org_id, active=active, reason=body.reason,
        actor=actor, ip=ip)))


@router.post("/organizations/{org_id}/deactivate", summary="Deactivate an organization: its "
             "keys answer 401 account_deactivated within 2 s")
async def deactivate_org(org_id: str, body: ReasonIn, ctx: Ctx, client: ClientInfo,
                         admin: AdminOperator) -> ActivationOut:
    return await _org_active(org_id, False, body, ctx, client.ip, admin.actor)


@router.post("/organizations/{org_id}/reactivate", summary="Lift an organization's "
             "deactivation")
async def reactivate_org(org_id: str, body: ReasonIn, ctx: Ctx, client: ClientInfo,
                         admin: AdminOperator) -> ActivationOut:
    return await _org_active(org_id, True, body, ctx, client.ip, admin.actor)


async def _user_active(user_id: str, active: bool, body: ReasonIn, ctx: Ctx, ip: str,
                       actor: str) -> ActivationOut:
    return ActivationOut.of(await ctx.db.run(functools.partial(
        actions.set_user_active, user_id=user_id, active=active, reason=body.reason,
        actor=actor, ip=ip)))


@router.post("/users/{user_id}/deactivate", summary="Deactivate a user: no sign-in, sessions "
             "end, the keys they made answer 401 account_deactivated")
async def deactivate_user(user_id: str, body: ReasonIn, ctx: Ctx, client: ClientInfo,
                          admin: AdminOperator) -> ActivationOut:
    return await _user_active(user_id, False, body, ctx, client.ip, admin.actor)


@router.post("/users/{user_id}/reactivate", summary="Lift a user's deactivation")
async def reactivate_user(user_id: str, body: ReasonIn, ctx: Ctx, client: ClientInfo,
                          admin: AdminOperator) -> ActivationOut:
    return await _user_active(user_id, True, body, ctx, client.ip, admin.actor)


@router.post("/users/{user_id}/reset-phone", status_code=status.HTTP_204_NO_CONTENT,
             summary="Forget a user's verified phone number")
async def reset_phone(user_id: str, body: ReasonIn, ctx: Ctx, client: ClientInfo,
                      admin: AdminOperator) -> Response:
    await ctx.db.run(functools.partial(actions.reset_phone, user_id=user_id,
                                       reason=body.reason, actor=admin.actor, ip=client.ip))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/codes", status_code=status.HTTP_201_CREATED,
             summary="Issue redemption codes (shown once)")
async def issue_codes(body: CodesIn, response: Response, ctx: Ctx, client: ClientInfo,
                      admin: AdminOperator) -> CodesOut:
    amount = _positive(body.amount_usd)
    codes = await ctx.db.run(functools.partial(
        actions.issue_codes, amount_nano=amount, count=body.count,
        expires_at=utc(body.expires_at),
        actor=admin.actor, secret=ctx.session_secret, ip=client.ip))
    response.headers["cache-control"] = "no-store"
    return CodesOut(amount=MoneyOut.of(amount), expires_at=utc(body.expires_at), codes=codes)


@router.post("/notes", status_code=status.HTTP_201_CREATED,
             summary="Add a note on a user or an organization (support may)")
async def add_note(body: NoteIn, ctx: Ctx, client: ClientInfo,
                   operator: CurrentOperator) -> NoteOut:
    note = await ctx.db.run(functools.partial(
        notes.add_note, target=body.target, body=body.body, operator_id=operator.operator_id,
        actor=operator.actor, ip=client.ip))
    return NoteOut.of(note)
