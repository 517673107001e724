"""/api endpoints: Settings → Billing (payment methods, top-ups, auto-recharge, credit
history). Billing actions are for owners; amounts are decimal USD strings plus exact nano-USD."""

from __future__ import annotations

import datetime as dt
from typing import Literal

import sqlalchemy as sa
from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, Field

from faregate.api.context import ApiContext
from faregate.api.deps import ClientInfo, Ctx, CurrentUser
from faregate.billing import methods, redemption, risk, state
from faregate.billing.amounts import parse_amount
from faregate.billing.charges import (
    Attempt,
    Outcome,
    Policy,
    list_attempts,
    refresh_attempt,
    top_up,
    wallet_top_up,
)
from faregate.billing.messages import decline_message
from faregate.billing.notices import send_suspension_notices
from faregate.config import Settings
from faregate.errors import InvalidRequest, PaymentRefused, UpstreamUnavailable
from faregate.identity.access import require_member, require_owner
from faregate.kit.money import nano_to_usd, usd_to_nano
from faregate.ledger.accounts import balance, org_account_id
from faregate.ledger.history import history
from faregate.ledger.lots import upcoming_expirations
from faregate.payments.processor import NextAction, PaymentProcessor
from faregate.usage import alerts

router = APIRouter()


def policy(s: Settings) -> Policy:
    return Policy(failures_to_suspend=s.failed_charges_to_suspend,
                  reinstate_on_payment=s.reinstate_on_payment)


def processor_of(ctx: ApiContext) -> PaymentProcessor:
    p = ctx.payments
    if p is None:
        raise UpstreamUnavailable("Payments are not configured on this server.",
                                  code="payments_unavailable")
    return p


class Money(BaseModel):
    usd: str
    nano_usd: int


def _money(nano: int) -> Money:
    return Money(usd=nano_to_usd(nano), nano_usd=nano)


class BillingConfig(BaseModel):
    processor: str
    simulated: bool = Field(description="True for the sandbox: payments are simulated.")
    publishable_key: str | None
    tokenize_url: str | None = Field(description="Where the browser sends card details "
                                     "(the sandbox's endpoint; null for Stripe: use Stripe.js).")
    topup_min: Money
    topup_max: Money
    presets_usd: list[str]
    wallets: list[str] = Field(default_factory=list, description="Wallets a top-up can be "
                               "paid with (payment_method_type): alipay, wechat_pay.")


class MethodOut(BaseModel):
    id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    billing_country: str | None
    is_default: bool
    created_at: dt.datetime


class AutoRecharge(BaseModel):
    enabled: bool
    threshold: Money | None
    amount: Money | None
    payment_method_id: str | None


class ExpiringCredit(BaseModel):
    kind: Literal["paid", "promotional"]
    amount: Money
    expires_at: dt.datetime


class BillingOut(BaseModel):
    balance: Money
    available: Money
    status: Literal["active", "suspended"]
    suspended_reason: str | None
    failed_charges: int
    auto_recharge: AutoRecharge
    payment_methods: list[MethodOut]
    low_balance_alert: Money | None = Field(
        default=None, description="The owners are emailed when the balance falls under this "
        "(PUT …/billing/alerts).")
    upcoming_expirations: list[ExpiringCredit] = Field(
        default_factory=list, description="The next credit to expire, soonest first: what is "
        "left of it (if not used before) and when.")


class AddMethod(BaseModel):
    payment_method_id: str = Field(min_length=3, max_length=80,
                                   description="The id the processor's tokenization returned.")


class TopUpIn(BaseModel):
    amount_usd: str = Field(max_length=20, description='e.g. "10" or "12.50"')
    payment_method_id: str | None = Field(None, description="Default: the default card.")
    payment_method_type: Literal["card", "alipay", "wechat_pay"] = Field(
        "card", description="alipay or wechat_pay: pay with the wallet instead of a saved "
        "card (where the server enables it: GET /api/billing/config). The answer is 202 with "
        "the next_action; the top-up is credited once the customer authorized it.")


class NextActionOut(BaseModel):
    type: Literal["redirect", "qr_code"]
    url: str | None = Field(description="redirect: send the browser here (Alipay); "
                            "qr_code: a page that shows the code.")
    qr_data: str | None = Field(description="qr_code: the content to show as a QR code for "
                                "the WeChat app to scan.")
    qr_image_url: str | None = Field(description="qr_code: an image of the code, when the "
                                     "processor gives one.")


class AttemptOut(BaseModel):
    id: str
    kind: str
    status: str
    client_secret: str | None = Field(default=None, description="requires_action only: "
                                      "authenticate "
                                      "with it, then POST …/top-ups/{id}/refresh.")
    confirm_url: str | None = None
    next_action: NextActionOut | None = Field(default=None, description="A wallet payment "
                                              "waiting for the customer: what they do next, "
                                              "then POST …/top-ups/{id}/refresh (or wait for "
                                              "the webhook).")
    amount: Money
    payment_method_id: str | None
    decline_code: str | None
    message: str | None
    created_at: dt.datetime
    credited: bool
    balance_after: Money | None


class AttemptList(BaseModel):
    data: list[AttemptOut]


class AutoRechargeIn(BaseModel):
    enabled: bool
    threshold_usd: str | None = Field(None, max_length=20)
    amount_usd: str | None = Field(None, max_length=20)
    payment_method_id: str | None = None


class HistoryEntry(BaseModel):
    id: int
    created_at: dt.datetime
    kind: str
    amount: Money
    reason: str | None


class HistoryOut(BaseModel):
    data: list[HistoryEntry]


def _attempt_out(a: Attempt) -> AttemptOut:
    return AttemptOut(id=a.id, kind=a.kind, status=a.status, amount=_money(a.amount_nano),
                      payment_method_id=a.payment_method_id, decline_code=a.decline_code,
                      message=decline_message(a.decline_code, a.message)
                      if a.status == "failed" else a.message,
                      created_at=a.created_at, credited=a.credited,
                      balance_after=_money(a.balance_after_nano)
                      if a.balance_after_nano is not None else None)


def _method_out(m: methods.MethodInfo) -> MethodOut:
    return MethodOut(id=m.id, brand=m.brand, last4=m.last4, exp_month=m.exp_month,
                     exp_year=m.exp_year, billing_country=m.billing_country,
                     is_default=m.is_default, created_at=m.created_at)


@router.get("/billing/config", response_model=BillingConfig,
            summary="How to pay here: processor, simulated or not, top-up range")
async def billing_config(ctx: Ctx, user: CurrentUser) -> BillingConfig:
    p = processor_of(ctx)
    s = ctx.settings
    low, high = usd_to_nano(s.topup_min_usd), usd_to_nano(s.topup_max_usd)
    presets = [x for x in ("5", "10", "20", "50") if low <= usd_to_nano(x) <= high]
    return BillingConfig(
        processor=p.name, simulated=p.simulated,
        publishable_key=s.stripe_publishable_key if p.name == "stripe" else "pk_test_sandbox",
        tokenize_url="/sandbox/v1/payment_methods" if p.name == "sandbox" else None,
        topup_min=_money(low), topup_max=_money(high), presets_usd=presets,
        wallets=list(s.stripe_wallets))


@router.get("/orgs/{org_id}/billing", response_model=BillingOut,
            summary="Balance, status, auto-recharge and payment methods (owner)")
async def get_billing(org_id: str, ctx: Ctx, user: CurrentUser) -> BillingOut:
    def run(conn: sa.Connection) -> BillingOut:
        require_owner(conn, org_id, user.user_id)
        acct = org_account_id(conn, org_id)
        b = balance(conn, acct)
        st = state.get_state(conn, org_id)
        cards = methods.list_methods(conn, org_id, user_id=user.user_id)
        expiring = upcoming_expirations(conn, acct,
                                        paid_months=ctx.settings.credit_expiry_months)
        return BillingOut(
            balance=_money(b.balance_nano), available=_money(b.available_nano),
            status="suspended" if st.suspended else "active",
            suspended_reason=st.suspended_reason, failed_charges=st.failed_charges,
            auto_recharge=AutoRecharge(
                enabled=st.auto_recharge,
                threshold=_money(st.auto_recharge_threshold_nano)
                if st.auto_recharge_threshold_nano is not None else None,
                amount=_money(st.auto_recharge_amount_nano)
                if st.auto_recharge_amount_nano is not None else None,
                payment_method_id=st.auto_recharge_method_id),
            payment_methods=[_method_out(m) for m in cards],
            low_balance_alert=_money(low) if (low := alerts.low_balance_of(conn, org_id))
            is not None else None,
            upcoming_expirations=[
                ExpiringCredit(kind="promotional" if e.kind == "promotional" else "paid",
                               amount=_money(e.remaining_nano), expires_at=e.expires_at)
                for e in expiring])
    return await ctx.db.run(run)


class BindingPending(BaseModel):
    status: Literal["requires_action"] = "requires_action"
    payment_method_id: str
    verification_id: str
    client_secret: str | None
    confirm_url: str | None = Field(description="The sandbox's 3-D Secure stand-in (POST "
                                    "{client_secret, authentication: complete|fail}); with "
                                    "Stripe, use Stripe.js handleNextAction instead.")


class ConfirmMethod(BaseModel):
    payment_method_id: str = Field(min_length=3, max_length=80)
    verification_id: str = Field(min_length=3, max_length=80)


def _confirm_url(ctx: ApiContext, payment_id: str) -> str | None:
    p = processor_of(ctx)
    return f"/sandbox/v1/payment_intents/{payment_id}/confirm" if p.name == "sandbox" else None


@router.post("/orgs/{org_id}/payment-methods", response_model=MethodOut | BindingPending,
             status_code=201,
             summary='"Add payment details": save a tokenized card after a $5 check (owner)',
             description="201 with the saved card; or 202 when the bank asks the cardholder "
             "to authenticate the check: complete it, then POST …/payment-methods/confirm.")
async def add_payment_method(org_id: str, body: AddMethod, ctx: Ctx, user: CurrentUser,
                             client: ClientInfo, response: Response
                             ) -> MethodOut | BindingPending:
    info = await methods.add_method(
        ctx.db, processor_of(ctx), organization_id=org_id, user_id=user.user_id,
        email=user.email, method_id=body.payment_method_id, ip=client.ip,
        verification_nano=usd_to_nano(ctx.settings.card_verification_usd),
        secret=ctx.session_secret, blocked_networks=tuple(ctx.settings.risk_blocked_networks),
        country_rule=risk.CountryRule(ctx.settings.risk_ip_country_csv,
                                      ctx.settings.risk_country_mismatch))
    if isinstance(info, methods.PendingBinding):
        response.status_code = 202
        return BindingPending(payment_method_id=info.method_id,
                              verification_id=info.verification_id,
                              client_secret=info.client_secret,
                              confirm_url=_confirm_url(ctx, info.verification_id))
    return _method_out(info)


@router.post("/orgs/{org_id}/payment-methods/confirm", response_model=MethodOut,
             status_code=201, summary="Finish binding a card after 3-D Secure (owner)")
async def confirm_payment_method(org_id: str, body: ConfirmMethod, ctx: Ctx,
                                 user: CurrentUser, client: ClientInfo) -> MethodOut:
    info = await methods.confirm_method(
        ctx.db, processor_of(ctx), organization_id=org_id, user_id=user.user_id,
        email=user.email, method_id=body.payment_method_id,
        verification_id=body.verification_id, ip=client.ip)
    return _method_out(info)


@router.delete("/orgs/{org_id}/payment-methods/{method_id}", status_code=204,
               summary="Remove a saved card (owner)")
async def remove_payment_method(org_id: str, method_id: str, ctx: Ctx, user: CurrentUser,
                                client: ClientInfo) -> Response:
    processor_id = await ctx.db.run(lambda conn: methods.remove_method(
        conn, org_id, method_id, user_id=user.user_id, ip=client.ip))
    await processor_of(ctx).detach_method(method_id=processor_id)
    return Response(status_code=204)


@router.post("/orgs/{org_id}/top-ups", response_model=AttemptOut, status_code=201,
             summary="Top up with a saved card, Alipay or WeChat Pay (owner); send an "
                     "Idempotency-Key",
             description="201 when paid; 202 with a client_secret when the bank asks for "
             "authentication (then POST …/top-ups/{id}/refresh); 202 with the next_action "
             "for a wallet payment (credited when the customer authorized it: webhook, or "
             "POST …/top-ups/{id}/refresh); 402 when declined.")
async def create_top_up(org_id: str, body: TopUpIn, ctx: Ctx, user: CurrentUser,
                        response: Response,
                        idempotency_key: str | None = Header(None, max_length=200)
                        ) -> AttemptOut:
    s = ctx.settings
    amount = parse_amount(body.amount_usd, low_usd=s.topup_min_usd, high_usd=s.topup_max_usd)
    if body.payment_method_type != "card":
        outcome = await _wallet_top_up(ctx, org_id, body, user, amount, idempotency_key)
    else:
        method_ref = body.payment_method_id or await ctx.db.run(methods.default_method, org_id)
        if method_ref is None:
            await ctx.db.run(require_member, org_id, user.user_id)
            raise InvalidRequest("Add a payment method first.", param="payment_method_id",
                                 code="no_payment_method")
        outcome = await top_up(ctx.db, processor_of(ctx), organization_id=org_id,
                               user_id=user.user_id, email=user.email, amount_nano=amount,
                               method_ref=method_ref, client_key=idempotency_key,
                               policy=policy(s))
    if outcome.suspended_now:
        await notify_suspension(ctx, org_id)
    a = outcome.attempt
    if a.status == "failed":
        raise PaymentRefused(decline_message(a.decline_code, a.message),
                             code=a.decline_code or "card_declined")
    if a.status == "error":
        raise InvalidRequest(a.message or "The payment could not be made.",
                             code=a.decline_code or "payment_error")
    out = _attempt_out(a)
    if a.status == "requires_action":
        response.status_code = 202
        out.client_secret = outcome.client_secret
        out.next_action = _next_action(outcome.next_action)
        if out.next_action is None:
            out.confirm_url = _confirm_url(ctx, a.payment_id) if a.payment_id else None
    return out


_WALLET_NAMES = {"alipay": "Alipay", "wechat_pay": "WeChat Pay"}


async def _wallet_top_up(ctx: ApiContext, org_id: str, body: TopUpIn, user: CurrentUser,
                         amount: int, idempotency_key: str | None) -> Outcome:
    wallet = body.payment_method_type
    assert wallet in ("alipay", "wechat_pay")
    if wallet not in ctx.settings.stripe_wallets:
        await ctx.db.run(require_member, org_id, user.user_id)
        raise InvalidRequest(f"{_WALLET_NAMES[wallet]} is not available on this server; pay "
                             "with a card.", param="payment_method_type",
                             code="payment_method_type_unavailable")
    if body.payment_method_id is not None:
        raise InvalidRequest("Give a saved card (payment_method_id) or a wallet "
                             "(payment_method_type), not both.", param="payment_method_id")
    return await wallet_top_up(
        ctx.db, processor_of(ctx), organization_id=org_id, user_id=user.user_id,
        email=user.email, amount_nano=amount, wallet=wallet, client_key=idempotency_key,
        policy=policy(ctx.settings), return_base=f"{ctx.settings.resolved_public_url}/billing")


def _next_action(action: NextAction | None) -> NextActionOut | None:
    if action is None:
        return None
    return NextActionOut(type=action.type, url=action.url, qr_data=action.qr_data,
                         qr_image_url=action.qr_image_url)


@router.post("/orgs/{org_id}/top-ups/{attempt_id}/refresh", response_model=AttemptOut,
             summary="Finish a top-up after 3-D Secure or a wallet payment (owner)")
async def refresh_top_up(org_id: str, attempt_id: str, ctx: Ctx,
                         user: CurrentUser) -> AttemptOut:
    outcome = await refresh_attempt(ctx.db, processor_of(ctx), organization_id=org_id,
                                    user_id=user.user_id, attempt_id=attempt_id,
                                    policy=policy(ctx.settings))
    if outcome.suspended_now:
        await notify_suspension(ctx, org_id)
    out = _attempt_out(outcome.attempt)
    out.next_action = _next_action(outcome.next_action)
    return out


async def notify_suspension(ctx: ApiContext, org_id: str) -> None:
    await send_suspension_notices(ctx.db, ctx.email, org_id,
                                  public_url=ctx.settings.resolved_public_url)


@router.get("/orgs/{org_id}/top-ups", response_model=AttemptList,
            summary="Payment attempts, newest first (owner)")
async def get_top_ups(org_id: str, ctx: Ctx, user: CurrentUser) -> AttemptList:
    def run(conn: sa.Connection) -> AttemptList:
        require_owner(conn, org_id, user.user_id)
        return AttemptList(data=[_attempt_out(a) for a in list_attempts(conn, org_id)])
    return await ctx.db.run(run)


@router.put("/orgs/{org_id}/auto-recharge", response_model=AutoRecharge,
            summary="Auto-recharge settings (owner)")
async def put_auto_recharge(org_id: str, body: AutoRechargeIn, ctx: Ctx,
                            user: CurrentUser) -> AutoRecharge:
    s = ctx.settings
    threshold = amount = None
    if body.enabled:
        if body.threshold_usd is None or body.amount_usd is None:
            raise InvalidRequest("Auto-recharge needs a threshold and an amount.",
                                 param="threshold_usd")
        amount = parse_amount(body.amount_usd, low_usd=s.topup_min_usd,
                              high_usd=s.topup_max_usd, param="amount_usd")
        threshold = parse_amount(body.threshold_usd, low_usd="0", high_usd="100000",
                                 param="threshold_usd")

    def run(conn: sa.Connection) -> AutoRecharge:
        require_owner(conn, org_id, user.user_id)
        method = body.payment_method_id
        if method is not None:
            methods.get_method(conn, org_id, method)
        elif body.enabled and methods.default_method(conn, org_id) is None:
            raise InvalidRequest("Add a payment method first.", param="payment_method_id",
                                 code="no_payment_method")
        if body.enabled and state.get_state(conn, org_id).suspended:
            raise InvalidRequest("Billing is suspended: pay with a working card first.",
                                 code="billing_not_active")
        st = state.set_auto_recharge(conn, org_id, enabled=body.enabled,
                                     threshold_nano=threshold, amount_nano=amount,
                                     method_id=method)
        return AutoRecharge(enabled=st.auto_recharge,
                            threshold=_money(threshold) if threshold is not None else None,
                            amount=_money(amount) if amount is not None else None,
                            payment_method_id=st.auto_recharge_method_id)
    return await ctx.db.run(run)


class BillingAlertsIn(BaseModel):
    low_balance_usd: str | None = Field(
        max_length=20, description='Email the owners when the balance falls under this '
        'amount, e.g. "5" (once, then again only after it has been back over it); null '
        "turns the email off.")


class BillingAlerts(BaseModel):
    low_balance: Money | None


@router.put("/orgs/{org_id}/billing/alerts", response_model=BillingAlerts,
            summary="Low-balance email (owner)")
async def put_billing_alerts(org_id: str, body: BillingAlertsIn, ctx: Ctx, user: CurrentUser,
                             client: ClientInfo) -> BillingAlerts:
    amount = None if body.low_balance_usd is None else \
        alerts.low_balance_from_usd(body.low_balance_usd)

    def run(conn: sa.Connection) -> BillingAlerts:
        require_owner(conn, org_id, user.user_id)
        low = alerts.set_low_balance(conn, org_id, amount, actor=f"user:{user.user_id}",
                                     ip=client.ip)
        return BillingAlerts(low_balance=_money(low) if low is not None else None)
    return await ctx.db.run(run)


@router.get("/orgs/{org_id}/credit-history", response_model=HistoryOut,
            summary="The organization's ledger: top-ups, grants, usage, refunds, "
                     "expired credit")
async def credit_history(org_id: str, ctx: Ctx, user: CurrentUser, limit: int = 50,
                         before: int | None = None) -> HistoryOut:
    def run(conn: sa.Connection) -> HistoryOut:
        require_member(conn, org_id, user.user_id)
        entries = history(conn, org_account_id(conn, org_id), limit=limit, before_id=before)
        return HistoryOut(data=[HistoryEntry(id=e.id, created_at=e.created_at, kind=e.kind,
                                             amount=_money(e.amount_nano), reason=e.reason)
                                for e in entries])
    return await ctx.db.run(run)




class RedeemIn(BaseModel):
    code: str = Field(min_length=1, max_length=64)


class Redeemed(BaseModel):
    amount: Money
    balance: Money


@router.post("/orgs/{org_id}/redeem", response_model=Redeemed,
             summary="Redeem a code for credit (owner)")
async def redeem_code(org_id: str, body: RedeemIn, ctx: Ctx, user: CurrentUser,
                      client: ClientInfo) -> Redeemed:
    await ctx.db.run(lambda conn: redemption.gate(
        conn, organization_id=org_id, user_id=user.user_id, ip=client.ip,
        secret=ctx.session_secret))

    def run(conn: sa.Connection) -> Redeemed:
        t = redemption.redeem(conn, code=body.code, organization_id=org_id,
                              user_id=user.user_id, ip=client.ip, secret=ctx.session_secret)
        b = balance(conn, org_account_id(conn, org_id))
        return Redeemed(amount=_money(t.amount_nano), balance=_money(b.balance_nano))
    return await ctx.db.run(run)
