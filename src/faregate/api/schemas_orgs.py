"""Request and response bodies of /api/orgs (members, invitations, projects, audit)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from faregate.audit.trail import AuditEvent
from faregate.identity.invitations import Invitation
from faregate.identity.orgs import Member, OrgDetail, OrgSummary
from faregate.identity.projects import Project
from faregate.kit.money import nano_to_usd

RoleName = Literal["owner", "member"]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrgPatchIn(Body):
    name: str = Field(max_length=400)


class RoleIn(Body):
    role: RoleName


class InvitationIn(Body):
    email: str = Field(max_length=400)
    role: RoleName = "member"


class AcceptIn(Body):
    token: str = Field(max_length=400)


class ProjectIn(Body):
    name: str = Field(max_length=400)


class ProjectPatchIn(Body):
    name: str | None = Field(default=None, max_length=400)
    archived: bool | None = None


class MoneyOut(BaseModel):
    nano_usd: int = Field(description="Exact amount in nano-USD (10^-9 USD).")
    usd: str = Field(description="The same amount as a decimal string, e.g. \"5.25\".")

    @classmethod
    def of(cls, nano: int) -> MoneyOut:
        return cls(nano_usd=nano, usd=nano_to_usd(nano))


class OrgOut(BaseModel):
    id: str
    name: str
    role: RoleName
    personal: bool

    @classmethod
    def of(cls, o: OrgSummary) -> OrgOut:
        return cls(id=o.id, name=o.name, role=o.role, personal=o.personal)


class OrgListOut(BaseModel):
    data: list[OrgOut]


class RequestLoggingOut(BaseModel):
    enabled: bool = Field(description="The operator is logging the bodies of this "
                          "organization's requests and responses (encrypted, for debugging).")
    until: dt.datetime | None = Field(description="When logging stops by itself; null when it "
                                      "is off, or on for every organization of this server.")
    retention_days: int = Field(description="How long each log is kept.")


class OrgDetailOut(BaseModel):
    id: str
    name: str
    role: RoleName
    personal: bool
    created_at: dt.datetime
    balance: MoneyOut = Field(description="Credits less what was spent.")
    available: MoneyOut = Field(description="The balance less what requests in flight hold.")
    request_logging: RequestLoggingOut = Field(
        description="Whether request bodies are being logged: the dashboard shows a banner.")
    deactivated: bool = Field(default=False, description="An operator deactivated the "
                              "organization: its API keys answer 401 account_deactivated.")
    deactivated_reason: str | None = None

    @classmethod
    def of(cls, o: OrgDetail, *, log_all: bool, retention_days: int) -> OrgDetailOut:
        logged = RequestLoggingOut(
            enabled=log_all or o.request_logging_until is not None,
            until=None if log_all else o.request_logging_until, retention_days=retention_days)
        return cls(id=o.id, name=o.name, role=o.role, personal=o.personal,
                   created_at=o.created_at, balance=MoneyOut.of(o.balance_nano),
                   available=MoneyOut.of(o.available_nano), request_logging=logged,
                   deactivated=o.deactivated_at is not None,
                   deactivated_reason=o.deactivated_reason)


class MemberOut(BaseModel):
    user_id: str
    email: str
    role: RoleName
    joined_at: dt.datetime
    personal: bool = Field(description="This is the member's personal organization.")

    @classmethod
    def of(cls, m: Member) -> MemberOut:
        return cls(user_id=m.user_id, email=m.email, role=m.role, joined_at=m.joined_at,
                   personal=m.personal)


class MemberListOut(BaseModel):
    data: list[MemberOut]


class InvitationOut(BaseModel):
    id: str
    organization_id: str
    email: str
    role: RoleName
    invited_by: str
    created_at: dt.datetime
    expires_at: dt.datetime

    @classmethod
    def of(cls, i: Invitation) -> InvitationOut:
        return cls(id=i.id, organization_id=i.organization_id, email=i.email, role=i.role,
                   invited_by=i.invited_by, created_at=i.created_at, expires_at=i.expires_at)


class InvitationListOut(BaseModel):
    data: list[InvitationOut]


class ProjectOut(BaseModel):
    id: str
    organization_id: str
    name: str
    is_default: bool
    archived: bool
    created_at: dt.datetime
    archived_at: dt.datetime | None

    @classmethod
    def of(cls, p: Project) -> ProjectOut:
        return cls(id=p.id, organization_id=p.organization_id, name=p.name,
                   is_default=p.is_default, archived=p.archived_at is not None,
                   created_at=p.created_at, archived_at=p.archived_at)


class ProjectListOut(BaseModel):
    data: list[ProjectOut]


class AuditEventOut(BaseModel):
    id: int
    created_at: dt.datetime
    action: str
    actor: str
    target: str | None
    ip: str | None
    detail: dict[str, Any] | None

    @classmethod
    def of(cls, e: AuditEvent) -> AuditEventOut:
        return cls(id=e.id, created_at=e.created_at, action=e.action, actor=e.actor,
                   target=e.target, ip=e.ip, detail=e.detail)


class AuditPageOut(BaseModel):
    data: list[AuditEventOut]
    has_more: bool
    next_before: int | None = Field(description="Pass as `before` for the next (older) page.")
