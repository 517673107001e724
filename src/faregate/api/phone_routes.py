"""/api endpoints: phone verification by SMS code (required before creating API keys)."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import BaseModel, Field

from faregate.api.deps import ClientInfo, Ctx, CurrentUser
from faregate.config import Settings
from faregate.phone.numbers import policy_from_names
from faregate.phone.verification import (
    CheckOutcome,
    PhoneRules,
    check_code,
    phone_status,
    raise_for,
    sms_text,
    start_verification,
)

router = APIRouter()


@lru_cache(maxsize=4)
def _rules_cached(types: tuple[str, ...], allowed: tuple[str, ...] | None,
                  blocked: tuple[str, ...], limits: tuple[int, ...]) -> PhoneRules:
    policy = policy_from_names(list(types), list(allowed) if allowed is not None else None,
                               list(blocked))
    return PhoneRules(policy, *limits)


def phone_rules(s: Settings) -> PhoneRules:
    return _rules_cached(
        tuple(s.phone_allowed_types),
        tuple(s.phone_allowed_countries) if s.phone_allowed_countries is not None else None,
        tuple(s.phone_blocked_countries),
        (s.phone_max_accounts, s.phone_code_ttl_s, s.phone_code_max_attempts,
         s.phone_resend_cooldown_s, s.phone_codes_per_number_per_hour,
         s.phone_codes_per_account_per_hour, s.phone_codes_per_ip_per_hour))


class PendingOut(BaseModel):
    masked: str
    expires_at: dt.datetime
    resend_at: dt.datetime
    attempts_left: int


class PhoneOut(BaseModel):
    verified: bool
    masked: str | None
    verified_at: dt.datetime | None
    pending: PendingOut | None


class SendCode(BaseModel):
    phone: str = Field(min_length=1, max_length=40,
                       description="E.164 (+447400123456), or national format with `country`.")
    country: str | None = Field(None, min_length=2, max_length=2,
                                description="ISO 3166 region for a national-format number.")


class CodeSentOut(BaseModel):
    masked: str
    expires_at: dt.datetime
    resend_at: dt.datetime


class VerifyCode(BaseModel):
    code: str = Field(min_length=1, max_length=20)


class VerifiedOut(BaseModel):
    verified: bool
    masked: str | None


@router.get("/me/phone", response_model=PhoneOut, summary="Phone verification status")
async def get_phone(user: CurrentUser, ctx: Ctx) -> PhoneOut:
    rules = phone_rules(ctx.settings)

    def run(conn: sa.Connection) -> PhoneOut:
        st = phone_status(conn, user.user_id, rules=rules)
        pending = st.pending
        return PhoneOut(verified=st.verified, masked=st.masked, verified_at=st.verified_at,
                        pending=PendingOut(masked=pending.masked, expires_at=pending.expires_at,
                                           resend_at=pending.resend_at,
                                           attempts_left=pending.attempts_left)
                        if pending else None)
    return await ctx.db.run(run)


@router.post("/me/phone/code", response_model=CodeSentOut, status_code=202,
             summary="Send a 6-digit code by SMS")
async def send_code(body: SendCode, user: CurrentUser, ctx: Ctx,
                    client: ClientInfo) -> CodeSentOut:
    rules = phone_rules(ctx.settings)

    def run(conn: sa.Connection) -> tuple[str, str, CodeSentOut]:
        sent = start_verification(conn, user_id=user.user_id, raw_number=body.phone,
                                  region=body.country.upper() if body.country else None,
                                  ip=client.ip, rules=rules, pepper=ctx.pepper)
        return sent.e164, sms_text(sent.code, ttl_s=rules.code_ttl_s), CodeSentOut(
            masked=sent.masked, expires_at=sent.expires_at, resend_at=sent.resend_at)
    to, text, out = await ctx.db.run(run)
    await ctx.sms.send(to, text)
    return out


@router.post("/me/phone/verify", response_model=VerifiedOut, summary="Check the SMS code")
async def verify_code(body: VerifyCode, user: CurrentUser, ctx: Ctx,
                      client: ClientInfo) -> VerifiedOut:
    rules = phone_rules(ctx.settings)

    def run(conn: sa.Connection) -> CheckOutcome:
        return check_code(conn, user_id=user.user_id, code=body.code, rules=rules,
                          pepper=ctx.pepper, ip=client.ip)
    outcome = await ctx.db.run(run)
    raise_for(outcome)  # after the commit: a wrong attempt stays counted
    return VerifiedOut(verified=True, masked=outcome.masked)
