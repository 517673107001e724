"""Request and response bodies of the operator console's API (/admin/api)."""

from __future__ import annotations

import datetime as dt
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from faregate.operators.accounts import Enrolled, Enrolment, Operator

_PASSWORD = Field(max_length=1024)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OperatorSignInIn(Body):
    email: str = Field(max_length=400)
    password: str = _PASSWORD
    totp_code: str | None = Field(default=None, max_length=20,
                                  description="The 6-digit code from the authenticator app.")
    recovery_code: str | None = Field(default=None, max_length=40,
                                      description="One of the recovery codes, instead of a "
                                      "TOTP code; each works once.")

    @model_validator(mode="after")
    def _one_factor(self) -> Self:
        if self.totp_code and self.recovery_code:
            raise ValueError("give either totp_code or recovery_code, not both")
        return self


class OperatorPasswordIn(Body):
    current_password: str = _PASSWORD
    new_password: str = _PASSWORD


class OperatorCreateIn(Body):
    email: str = Field(max_length=400)
    role: Literal["admin", "support"]
    name: str | None = Field(default=None, max_length=400)
    password: str = Field(max_length=1024, description="The initial password; the operator "
                          "changes it with POST /admin/api/me/password.")


class OperatorPatchIn(Body):
    role: Literal["admin", "support"] | None = None
    disabled: bool | None = Field(default=None, description="true disables the operator and "
                                  "ends their sessions; false enables them again.")
    name: str | None = Field(default=None, max_length=400)


class OperatorOut(BaseModel):
    id: str
    email: str
    name: str | None
    role: Literal["admin", "support"]
    status: Literal["active", "disabled"]
    totp_confirmed: bool = Field(description="Signed in with a code from the authenticator "
                                 "at least once since TOTP was (re)set.")
    recovery_codes_left: int
    created_at: dt.datetime
    disabled_at: dt.datetime | None
    last_sign_in_at: dt.datetime | None

    @classmethod
    def of(cls, o: Operator) -> OperatorOut:
        return cls(id=o.id, email=o.email, name=o.name, role=o.role,
                   status="active" if o.active else "disabled", totp_confirmed=o.totp_confirmed,
                   recovery_codes_left=o.recovery_codes_left, created_at=o.created_at,
                   disabled_at=o.disabled_at, last_sign_in_at=o.last_sign_in_at)


class OperatorListOut(BaseModel):
    data: list[OperatorOut]


class EnrolmentOut(BaseModel):
    otpauth_uri: str = Field(description="For the authenticator app (render it as a QR code).")
    secret: str = Field(description="The same secret in base32, to type in by hand.")
    recovery_codes: list[str] = Field(description="Ten single-use codes; shown only now.")

    @classmethod
    def of(cls, e: Enrolment) -> EnrolmentOut:
        return cls(otpauth_uri=e.otpauth_uri, secret=e.secret,
                   recovery_codes=list(e.recovery_codes))


class OperatorEnrolledOut(BaseModel):
    operator: OperatorOut
    enrolment: EnrolmentOut

    @classmethod
    def of(cls, e: Enrolled) -> OperatorEnrolledOut:
        return cls(operator=OperatorOut.of(e.operator), enrolment=EnrolmentOut.of(e.enrolment))


class OperatorAuthOut(BaseModel):
    operator: OperatorOut
    csrf_token: str = Field(description="The new session's CSRF token (also in the "
                            "fg_admin_csrf cookie).")
    used_recovery_code: bool
    recovery_codes_left: int


class CsrfOut(BaseModel):
    csrf_token: str = Field(description="Send it in the X-CSRF-Token header.")
