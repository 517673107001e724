"""Operator accounts: create (with TOTP enrolment and recovery codes, shown once), list, change
role or name, disable and enable, set the password, reset TOTP. Every change is audited with
before/after (audit.changes).

At least one enabled admin always remains: disabling or demoting the last one is refused, so
the console can never lock its admins out (the CLI can always make a new admin)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import sqlalchemy as sa

from faregate.audit.changes import record_change
from faregate.db.schema import operator_recovery_codes, operators
from faregate.errors import NotFound, Refused
from faregate.identity.locks import lock_subject
from faregate.identity.names import clean_name
from faregate.identity.passwords import check_password_policy, hash_password
from faregate.identity.users import lookup_email, normalize_email
from faregate.kit.crypto import Cipher
from faregate.kit.ids import new_id
from faregate.operators import recovery_codes, sessions, totp
from faregate.operators.rules import Role, as_role

_LOCK_SPACE = 0x4F505253  # b"OPRS": changes to the set of operators, one at a time
_ALL = "operators"


@dataclass(frozen=True, slots=True)
class Operator:
    id: str
    email: str
    name: str | None
    role: Role
    totp_confirmed: bool
    created_at: dt.datetime
    disabled_at: dt.datetime | None
    last_sign_in_at: dt.datetime | None
    recovery_codes_left: int

    @property
    def active(self) -> bool:
        return self.disabled_at is None

    def audit_view(self) -> dict[str, object]:
        """What the audit trail records of an operator (before/after a change)."""
        return {"email": self.email, "name": self.name, "role": self.role,
                "disabled": self.disabled_at is not None}


@dataclass(frozen=True, slots=True)
class Enrolment:
    """What the operator's authenticator needs, and their recovery codes: shown once."""

    otpauth_uri: str = field(repr=False)
    secret: str = field(repr=False)
    recovery_codes: tuple[str, ...] = field(repr=False)


@dataclass(frozen=True, slots=True)
class Enrolled:
    """An operator just created or whose TOTP was just reset, with their enrolment."""

    operator: Operator
    enrolment: Enrolment


@dataclass(frozen=True, slots=True)
class OperatorChange:
    """Fields to change; None leaves a field as it is."""

    role: Role | None = None
    disabled: bool | None = None
    name: str | None = None


def hash_new_password(password: str, *, email: str, min_length: int) -> str:
    """Check the password policy and hash (slow on purpose: run off the event loop)."""
    check_password_policy(password, min_length=min_length, email=email)
    return hash_password(password)


def _codes_left() -> sa.ScalarSelect[int]:
    r = operator_recovery_codes.c
    return (sa.select(sa.func.count()).where(r.operator_id == operators.c.id,
                                             r.used_at.is_(None))
            .correlate(operators).scalar_subquery())


def _select() -> sa.Select[tuple[object, ...]]:
    return sa.select(operators, _codes_left().label("codes_left"))


def _of(row: sa.Row[tuple[object, ...]]) -> Operator:
    m = row._mapping
    return Operator(str(m["id"]), str(m["email"]), m["name"], as_role(str(m["role"])),
                    m["totp_confirmed_at"] is not None, m["created_at"], m["disabled_at"],
                    m["last_sign_in_at"], int(m["codes_left"]))


def get_operator(conn: sa.Connection, operator_id: str) -> Operator:
    row = conn.execute(_select().where(operators.c.id == operator_id)).first()
    if row is None:
        raise NotFound(f"No operator with id {operator_id!r}.", param="operator_id",
                       code="operator_not_found")
    return _of(row)


def get_by_email(conn: sa.Connection, email: str) -> Operator:
    row = conn.execute(_select().where(operators.c.email == lookup_email(email))).first()
    if row is None:
        raise NotFound(f"no operator with email {email!r}", param="email",
                       code="operator_not_found")
    return _of(row)


def list_operators(conn: sa.Connection) -> list[Operator]:
    return [_of(r) for r in conn.execute(_select().order_by(operators.c.created_at,
                                                            operators.c.id))]


def _enrol(conn: sa.Connection, operator_id: str, email: str, *, cipher: Cipher,
           secret: bytes) -> tuple[str, Enrolment]:
    """A new TOTP secret (returned encrypted, for the row) and recovery codes."""
    otp_secret = totp.new_secret()
    codes = recovery_codes.replace_codes(conn, operator_id, secret=secret)
    return cipher.encrypt(otp_secret), Enrolment(totp.otpauth_uri(otp_secret, email),
                                                 otp_secret, codes)


def create_operator(conn: sa.Connection, *, email: str, role: Role, password_hash: str,
                    name: str | None, cipher: Cipher, secret: bytes, actor: str,
                    ip: str | None = None) -> Enrolled:
    """A new operator with a TOTP secret and recovery codes (returned, to show once). The
    authenticator is confirmed by the first sign-in with a code from it."""
    email = normalize_email(email)
    name = clean_name(name, what="operator") if name is not None else None
    lock_subject(conn, _LOCK_SPACE, _ALL)
    if conn.execute(sa.select(operators.c.id).where(operators.c.email == email)).first():
        raise Refused(f"an operator with email {email} already exists", param="email",
                      code="email_taken")
    operator_id = new_id("op")
    now = dt.datetime.now(dt.UTC)
    conn.execute(operators.insert().values(
        id=operator_id, email=email, name=name, role=role, password_hash=password_hash,
        password_changed_at=now, totp_secret_encrypted="", created_at=now))
    encrypted, enrolment = _enrol(conn, operator_id, email, cipher=cipher, secret=secret)
    conn.execute(operators.update().where(operators.c.id == operator_id)
                 .values(totp_secret_encrypted=encrypted))
    made = get_operator(conn, operator_id)
    record_change(conn, actor=actor, action="operator.created", target=operator_id,
                  before=None, after=made.audit_view(), ip=ip)
    return Enrolled(made, enrolment)


def _other_active_admins(conn: sa.Connection, operator_id: str) -> int:
    return int(conn.execute(sa.select(sa.func.count()).where(
        operators.c.role == "admin", operators.c.disabled_at.is_(None),
        operators.c.id != operator_id)).scalar_one())


def change_operator(conn: sa.Connection, operator_id: str, change: OperatorChange, *,
                    actor: str, ip: str | None = None) -> Operator:
    """Change an operator's role, name or enabled state. Disabling ends their sessions.
    Refused when it would leave no enabled admin."""
    lock_subject(conn, _LOCK_SPACE, _ALL)
    before = get_operator(conn, operator_id)
    values: dict[str, object] = {}
    if change.name is not None:
        values["name"] = clean_name(change.name, what="operator")
    if change.role is not None and change.role != before.role:
        values["role"] = change.role
    if change.disabled is not None and change.disabled != (not before.active):
        values["disabled_at"] = dt.datetime.now(dt.UTC) if change.disabled else None
    if not values:
        return before
    loses_admin = before.role == "admin" and before.active and (
        values.get("role") == "support" or values.get("disabled_at") is not None)
    if loses_admin and _other_active_admins(conn, operator_id) == 0:
        raise Refused(f"{before.email} is the last enabled admin: make or enable another "
                      "admin first.", code="last_admin")
    conn.execute(operators.update().where(operators.c.id == operator_id).values(**values))
    if values.get("disabled_at") is not None:
        sessions.revoke_all(conn, operator_id)
    after = get_operator(conn, operator_id)
    record_change(conn, actor=actor, action="operator.updated", target=operator_id,
                  before=before.audit_view(), after=after.audit_view(), ip=ip)
    return after


def set_password(conn: sa.Connection, operator_id: str, password_hash: str, *, actor: str,
                 ip: str | None = None, keep_session_id: str | None = None,
                 expected_hash: str | None = None) -> bool:
    """Store a new password hash and end the operator's other sessions. With `expected_hash`,
    only if the stored hash is still that one (no change in between); returns whether it was
    stored."""
    get_operator(conn, operator_id)
    q = operators.update().where(operators.c.id == operator_id)
    if expected_hash is not None:
        q = q.where(operators.c.password_hash == expected_hash)
    done = conn.execute(q.values(password_hash=password_hash,
                                 password_changed_at=dt.datetime.now(dt.UTC)))
    if done.rowcount != 1:
        return False
    ended = sessions.revoke_all(conn, operator_id, except_session_id=keep_session_id)
    record_change(conn, actor=actor, action="operator.password_set", target=operator_id,
                  before=None, after=None, ip=ip, detail={"sessions_ended": ended})
    return True


def reset_totp(conn: sa.Connection, operator_id: str, *, cipher: Cipher, secret: bytes,
               actor: str, ip: str | None = None) -> Enrolled:
    """A new TOTP secret and new recovery codes (the old ones stop working); the operator's
    sessions end. Returns the enrolment, to show once."""
    op = get_operator(conn, operator_id)
    encrypted, enrolment = _enrol(conn, operator_id, op.email, cipher=cipher, secret=secret)
    conn.execute(operators.update().where(operators.c.id == operator_id).values(
        totp_secret_encrypted=encrypted, totp_confirmed_at=None, totp_last_step=None))
    ended = sessions.revoke_all(conn, operator_id)
    record_change(conn, actor=actor, action="operator.totp_reset", target=operator_id,
                  before={"totp_confirmed": op.totp_confirmed},
                  after={"totp_confirmed": False}, ip=ip, detail={"sessions_ended": ended})
    return Enrolled(get_operator(conn, operator_id), enrolment)


def password_hash_of(conn: sa.Connection, operator_id: str) -> str:
    """The stored hash, to verify a current password against (off the event loop)."""
    found = conn.execute(sa.select(operators.c.password_hash)
                         .where(operators.c.id == operator_id)).scalar()
    if found is None:
        raise NotFound(f"No operator with id {operator_id!r}.", code="operator_not_found")
    return str(found)
