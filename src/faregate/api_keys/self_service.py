"""Keys that users manage themselves: who may create, see, rename and revoke which keys."""

from __future__ import annotations

import sqlalchemy as sa

from faregate.api_keys.service import (
    IssuedKey,
    KeyInfo,
    KeySpec,
    get_key,
    issue_key,
    list_keys,
    rename_key,
    revoke_key,
)
from faregate.api_keys.spend_limits import Keep, set_spend_limit
from faregate.audit import trail
from faregate.db.schema import users
from faregate.errors import NotFound, PermissionDenied
from faregate.identity.access import require_member
from faregate.ledger.limits import Period

PHONE_REQUIRED = ("Verify your phone number before creating an API key "
                  "(Settings → Phone verification).")


def _role(conn: sa.Connection, organization_id: str, user_id: str) -> str:
    """The user's role in the organization; a non-member gets 404, as if it did not exist."""
    return require_member(conn, organization_id, user_id)


def create_user_key(conn: sa.Connection, *, user_id: str, organization_id: str, spec: KeySpec,
                    pepper: bytes, require_phone: bool, ip: str | None) -> IssuedKey:
    role = _role(conn, organization_id, user_id)
    if spec.kind == "service":
        raise PermissionDenied("Service keys are issued by the operator.", param="kind")
    if spec.kind == "admin" and role != "owner":
        raise PermissionDenied("Only owners of the organization can create admin keys.",
                               param="kind")
    if require_phone:
        verified = conn.execute(sa.select(users.c.phone_verified_at)
                                .where(users.c.id == user_id)).scalar()
        if verified is None:
            raise PermissionDenied(PHONE_REQUIRED, code="phone_verification_required")
    issued = issue_key(conn, organization_id=organization_id, user_id=user_id, name=spec.name,
                       pepper=pepper, spec=spec)
    info = get_key(conn, issued.id)
    trail.record(conn, action="api_key.created", actor=f"user:{user_id}", target=issued.id,
                 organization_id=organization_id, ip=ip,
                 detail={"name": info.name, "redacted": info.redacted, "kind": info.kind,
                         "project_id": info.project_id, "permissions": info.permissions})
    return issued


def _visible(conn: sa.Connection, user_id: str, organization_id: str, key_id: str) -> KeyInfo:
    role = _role(conn, organization_id, user_id)
    info = get_key(conn, key_id, organization_id=organization_id)
    if info.kind == "admin" and role != "owner":
        raise NotFound(f"No API key {key_id!r}.")
    return info


def user_list_keys(conn: sa.Connection, *, user_id: str, organization_id: str,
                   project_id: str | None = None) -> list[KeyInfo]:
    role = _role(conn, organization_id, user_id)
    return list_keys(conn, organization_id, include_admin=role == "owner", project_id=project_id)


def user_get_key(conn: sa.Connection, *, user_id: str, organization_id: str,
                 key_id: str) -> KeyInfo:
    return _visible(conn, user_id, organization_id, key_id)


def _editable(conn: sa.Connection, user_id: str, organization_id: str, key_id: str) -> KeyInfo:
    """Owners change any key of the organization; a member only the keys they created."""
    info = _visible(conn, user_id, organization_id, key_id)
    if info.created_by != user_id and _role(conn, organization_id, user_id) != "owner":
        raise PermissionDenied("Only an owner of this organization or the key's creator can "
                               "change this key.", code="owner_required")
    return info


def user_rename_key(conn: sa.Connection, *, user_id: str, organization_id: str, key_id: str,
                    name: str) -> KeyInfo:
    _editable(conn, user_id, organization_id, key_id)
    return rename_key(conn, key_id, name, organization_id=organization_id)


def user_set_spend_limit(conn: sa.Connection, *, user_id: str, organization_id: str,
                         key_id: str, limit_nano: int | Keep | None,
                         period: Period | Keep | None, ip: str | None) -> KeyInfo:
    """Change a key's spend limit: owners any key, a member the keys they created."""
    _editable(conn, user_id, organization_id, key_id)
    return set_spend_limit(conn, key_id, organization_id=organization_id, limit_nano=limit_nano,
                           period=period, actor=f"user:{user_id}", ip=ip)


def user_revoke_key(conn: sa.Connection, *, user_id: str, organization_id: str, key_id: str,
                    ip: str | None) -> KeyInfo:
    _visible(conn, user_id, organization_id, key_id)
    return revoke_key(conn, key_id, organization_id=organization_id, actor=f"user:{user_id}",
                      ip=ip)


def revoke_member_keys(conn: sa.Connection, *, organization_id: str, member_id: str,
                       actor: str, ip: str | None) -> int:
    """A member who leaves (or is removed) takes no working key of the organization along."""
    mine = [k for k in list_keys(conn, organization_id, include_revoked=False)
            if k.created_by == member_id]
    for k in mine:
        revoke_key(conn, k.id, organization_id=organization_id, actor=actor, ip=ip)
    return len(mine)
