"""Request and response bodies of /api/auth and /api/me."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from faregate.identity.profile import Profile, SessionInfo
from faregate.identity.users import User

# Longer than any acceptable password, so that the policy (not the parser) explains the limit.
_PASSWORD = Field(max_length=1024)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignUpIn(Body):
    email: str = Field(max_length=400, examples=["ada@example.com"])
    password: str = _PASSWORD
    name: str | None = Field(default=None, max_length=200,
                             description="Used to name the personal organization.")


class SignInIn(Body):
    email: str = Field(max_length=400)
    password: str = _PASSWORD


class TokenIn(Body):
    token: str = Field(max_length=400, description="The token from the emailed link.")


class EmailIn(Body):
    email: str = Field(max_length=400)


class ResetConfirmIn(Body):
    token: str = Field(max_length=400)
    password: str = _PASSWORD


class PasswordChangeIn(Body):
    current_password: str = _PASSWORD
    new_password: str = _PASSWORD


class CsrfOut(BaseModel):
    csrf_token: str = Field(description="Send it in the X-CSRF-Token header.")


class MessageOut(BaseModel):
    message: str


class UserOut(BaseModel):
    id: str
    email: str
    email_verified: bool
    personal_organization_id: str

    @classmethod
    def of(cls, user: User, *, email_verified: bool) -> UserOut:
        return cls(id=user.id, email=user.email, email_verified=email_verified,
                   personal_organization_id=user.organization_id)


class AuthOut(BaseModel):
    user: UserOut
    csrf_token: str = Field(description="The new session's CSRF token (also in the fg_csrf "
                            "cookie).")


class VerifiedOut(BaseModel):
    email: str
    email_verified: bool


class PhoneOut(BaseModel):
    verified: bool
    masked: str | None


class MembershipOut(BaseModel):
    id: str
    name: str
    role: Literal["owner", "member"]
    personal: bool


class MeOut(BaseModel):
    id: str
    email: str
    email_verified: bool
    phone: PhoneOut
    organizations: list[MembershipOut]
    personal_organization_id: str
    created_at: dt.datetime
    locale: str | None = Field(default=None, description="The dashboard language the user "
                               "chose (en or zh-CN); null follows the browser.")

    @classmethod
    def of(cls, p: Profile) -> MeOut:
        return cls(id=p.id, email=p.email, email_verified=p.email_verified,
                   phone=PhoneOut(verified=p.phone_verified, masked=p.phone_masked),
                   organizations=[MembershipOut(id=o.id, name=o.name, role=o.role,
                                                personal=o.personal) for o in p.organizations],
                   personal_organization_id=p.personal_organization_id,
                   created_at=p.created_at, locale=p.locale)


class MePatchIn(Body):
    locale: Literal["en", "zh-CN"] | None = Field(description="The dashboard language; null "
                                                 "follows the browser.")


class SessionOut(BaseModel):
    id: str
    created_at: dt.datetime
    last_seen_at: dt.datetime
    expires_at: dt.datetime
    ip: str | None
    user_agent: str | None
    current: bool

    @classmethod
    def of(cls, s: SessionInfo) -> SessionOut:
        return cls(id=s.id, created_at=s.created_at, last_seen_at=s.last_seen_at,
                   expires_at=s.expires_at, ip=s.ip, user_agent=s.user_agent,
                   current=s.current)


class SessionListOut(BaseModel):
    data: list[SessionOut]
