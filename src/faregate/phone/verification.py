"""Verify a user's phone number with a 6-digit SMS code.

Each function runs inside the caller's transaction and never commits. `check_code` does not
raise for a wrong or expired code, so that the counted attempt is committed; the caller calls
`raise_for(outcome)` after the commit. The plaintext code is returned once by
`start_verification` for the SMS (sent after the commit) and is stored only as an HMAC.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from faregate.audit import trail
from faregate.db.schema import phone_codes, users
from faregate.errors import InvalidRequest, NotFound, RateLimited
from faregate.kit.ids import new_id
from faregate.phone.codes import (
    code_hmac,
    code_matches,
    ip_key,
    new_code,
    phone_hash,
    sms_text,
    wait_words,
)
from faregate.phone.numbers import PhoneNumberRejected, PhonePolicy, mask_phone

__all__ = [
    "CheckOutcome", "CheckStatus", "CodeSent", "PendingCode", "PhoneRules", "PhoneStatus",
    "check_code", "phone_status", "prune_codes", "raise_for", "sms_text", "start_verification",
]

HOUR_S = 3600
_IN_USE = ("This phone number is already verified on the maximum number of accounts. "
           "Use a different number.")
# pg_advisory_xact_lock(key1, key2) namespace for "one phone number": b"PHON".
_NUMBER_LOCK_SPACE = 0x50484F4E


@dataclass(frozen=True, slots=True)
class PhoneRules:
    """The limits of phone verification; the API builds it from Settings."""

    policy: PhonePolicy = field(default_factory=PhonePolicy)
    max_accounts: int = 3
    code_ttl_s: int = 600
    code_max_attempts: int = 5
    resend_cooldown_s: int = 60
    codes_per_number_per_hour: int = 5
    codes_per_account_per_hour: int = 5
    codes_per_ip_per_hour: int = 20


@dataclass(frozen=True, slots=True)
class CodeSent:
    """A new code. `code` and `e164` go to the SMS sender only (hidden from repr)."""

    code_id: str
    code: str = field(repr=False)
    e164: str = field(repr=False)
    masked: str
    expires_at: dt.datetime
    resend_at: dt.datetime


class CheckStatus(enum.StrEnum):
    VERIFIED = "verified"
    WRONG = "wrong"
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    EXPIRED = "expired"
    NO_CODE = "no_code"
    NUMBER_IN_USE = "number_in_use"


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    status: CheckStatus
    attempts_left: int | None = None  # for WRONG
    masked: str | None = None  # the number the code was sent to

    @property
    def verified(self) -> bool:
        return self.status is CheckStatus.VERIFIED


@dataclass(frozen=True, slots=True)
class PendingCode:
    masked: str
    expires_at: dt.datetime
    resend_at: dt.datetime
    attempts_left: int


@dataclass(frozen=True, slots=True)
class PhoneStatus:
    verified: bool
    masked: str | None
    verified_at: dt.datetime | None
    pending: PendingCode | None


def _now(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        raise ValueError("naive datetime: times are in UTC")
    return now.astimezone(dt.UTC)


def _seconds_until(then: dt.datetime, now: dt.datetime) -> int:
    return max(1, math.ceil((then - now).total_seconds()))


def _lock_user(conn: sa.Connection, user_id: str) -> sa.Row[*tuple[Any, ...]]:
    """The user's row, locked: one code request or check per user at a time."""
    row = conn.execute(sa.select(users.c.organization_id, users.c.phone_hash,
                                 users.c.phone_masked, users.c.phone_verified_at)
                       .where(users.c.id == user_id).with_for_update()).first()
    if row is None:
        raise NotFound(f"no user {user_id!r}")
    return row


def _lock_number(conn: sa.Connection, number_hash: str) -> None:
    """Serialize the account count of one number (SQLite's write transactions already are)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(
            _NUMBER_LOCK_SPACE, int(number_hash[:7], 16))))


def _other_accounts(conn: sa.Connection, number_hash: str, user_id: str) -> int:
    return int(conn.execute(
        sa.select(sa.func.count()).select_from(users)
        .where(users.c.phone_hash == number_hash, users.c.phone_verified_at.is_not(None),
               users.c.id != user_id)).scalar_one())


def _check_cap(conn: sa.Connection, where: sa.ColumnElement[bool], cap: int, now: dt.datetime,
               message: str) -> None:
    """Refuse when `cap` codes matching `where` were created in the last hour; retry when the
    cap-th newest of them leaves the window."""
    nth_newest = conn.execute(
        sa.select(phone_codes.c.created_at)
        .where(where, phone_codes.c.created_at > now - dt.timedelta(seconds=HOUR_S))
        .order_by(phone_codes.c.created_at.desc()).offset(cap - 1).limit(1)).scalar()
    if nth_newest is not None:
        wait = _seconds_until(nth_newest + dt.timedelta(seconds=HOUR_S), now)
        raise RateLimited(f"{message} Try again in {wait_words(wait)}.",
                          headers={"retry-after": str(wait)})


def start_verification(conn: sa.Connection, *, user_id: str, raw_number: str,
                       region: str | None, ip: str | None, rules: PhoneRules, pepper: bytes,
                       now: dt.datetime | None = None) -> CodeSent:
    """Check the number and the limits, then store a new code (superseding earlier ones)."""
    now = _now(now)
    try:
        e164 = rules.policy.accept(raw_number, region)
    except PhoneNumberRejected as exc:
        raise InvalidRequest(exc.message, param="phone", code=f"phone_{exc.reason}") from None
    user = _lock_user(conn, user_id)
    number = phone_hash(pepper, e164)
    masked = mask_phone(e164)
    if user.phone_hash == number and user.phone_verified_at is not None:
        raise InvalidRequest("This number is already verified on your account.",
                             param="phone", code="phone_already_verified")
    _lock_number(conn, number)
    if _other_accounts(conn, number, user_id) >= rules.max_accounts:
        raise InvalidRequest(_IN_USE, param="phone", code="phone_in_use")

    latest = conn.execute(sa.select(sa.func.max(phone_codes.c.created_at))
                          .where(phone_codes.c.user_id == user_id)).scalar()
    if latest is not None:
        resend_at = latest + dt.timedelta(seconds=rules.resend_cooldown_s)
        if resend_at > now:
            wait = _seconds_until(resend_at, now)
            raise RateLimited(f"Please wait {wait_words(wait)} before requesting a new code.",
                              headers={"retry-after": str(wait)})
    client = ip_key(ip)
    _check_cap(conn, phone_codes.c.phone_hash == number, rules.codes_per_number_per_hour, now,
               "Too many codes have been sent to this number.")
    _check_cap(conn, phone_codes.c.user_id == user_id, rules.codes_per_account_per_hour, now,
               "You have requested too many codes.")
    if client is not None:
        _check_cap(conn, phone_codes.c.ip == client, rules.codes_per_ip_per_hour, now,
                   "Too many codes have been requested from your network.")

    conn.execute(phone_codes.update()
                 .where(phone_codes.c.user_id == user_id, phone_codes.c.verified_at.is_(None),
                        phone_codes.c.superseded_at.is_(None))
                 .values(superseded_at=now))
    code_id = new_id("pcode")
    code = new_code()
    expires_at = now + dt.timedelta(seconds=rules.code_ttl_s)
    conn.execute(phone_codes.insert().values(
        id=code_id, user_id=user_id, phone_hash=number, phone_masked=masked,
        code_hmac=code_hmac(pepper, code_id, code), ip=client, created_at=now,
        expires_at=expires_at, attempts=0))
    return CodeSent(code_id, code, e164, masked, expires_at,
                    now + dt.timedelta(seconds=rules.resend_cooldown_s))


def _pending_code(conn: sa.Connection, user_id: str) -> sa.Row[*tuple[Any, ...]] | None:
    return conn.execute(
        sa.select(phone_codes)
        .where(phone_codes.c.user_id == user_id, phone_codes.c.verified_at.is_(None),
               phone_codes.c.superseded_at.is_(None))
        .order_by(phone_codes.c.created_at.desc(), phone_codes.c.id.desc()).limit(1)).first()


def check_code(conn: sa.Connection, *, user_id: str, code: str, rules: PhoneRules,
               pepper: bytes, ip: str | None, now: dt.datetime | None = None) -> CheckOutcome:
    """Check `code` against the user's current code; on success the number becomes the user's
    verified number (replacing any earlier one). Failures are returned, not raised."""
    now = _now(now)
    user = _lock_user(conn, user_id)
    row = _pending_code(conn, user_id)
    if row is None:
        return CheckOutcome(CheckStatus.NO_CODE)
    masked = str(row.phone_masked)
    if row.attempts >= rules.code_max_attempts:
        return CheckOutcome(CheckStatus.TOO_MANY_ATTEMPTS, masked=masked)
    if row.expires_at <= now:
        return CheckOutcome(CheckStatus.EXPIRED, masked=masked)
    if not code_matches(pepper, row.id, code, row.code_hmac):
        conn.execute(phone_codes.update().where(phone_codes.c.id == row.id)
                     .values(attempts=phone_codes.c.attempts + 1))
        left = rules.code_max_attempts - row.attempts - 1
        if left <= 0:
            return CheckOutcome(CheckStatus.TOO_MANY_ATTEMPTS, masked=masked)
        return CheckOutcome(CheckStatus.WRONG, attempts_left=left, masked=masked)

    conn.execute(phone_codes.update().where(phone_codes.c.id == row.id)
                 .values(verified_at=now))
    _lock_number(conn, row.phone_hash)
    if _other_accounts(conn, row.phone_hash, user_id) >= rules.max_accounts:
        return CheckOutcome(CheckStatus.NUMBER_IN_USE, masked=masked)
    conn.execute(users.update().where(users.c.id == user_id).values(
        phone_hash=row.phone_hash, phone_masked=masked, phone_verified_at=now))
    replaced = user.phone_masked if user.phone_hash not in (None, row.phone_hash) else None
    trail.record(conn, action="phone.verified", actor=f"user:{user_id}", target=masked,
                 organization_id=user.organization_id, ip=ip,
                 detail={"replaced": replaced} if replaced else None)
    return CheckOutcome(CheckStatus.VERIFIED, masked=masked)


_FAILURES: dict[CheckStatus, tuple[str, str]] = {
    CheckStatus.TOO_MANY_ATTEMPTS: ("phone_code_attempts_exceeded",
                                    "Too many wrong codes. Request a new code."),
    CheckStatus.EXPIRED: ("phone_code_expired", "This code has expired. Request a new one."),
    CheckStatus.NO_CODE: ("phone_code_no_pending", "Request a code first."),
}


def raise_for(outcome: CheckOutcome) -> None:
    """Turn a failed check into its error (after the attempt was committed)."""
    status = outcome.status
    if status is CheckStatus.VERIFIED:
        return
    if status is CheckStatus.WRONG:
        left = outcome.attempts_left or 0
        attempts = "1 attempt" if left == 1 else f"{left} attempts"
        raise InvalidRequest(f"That code is not right. {attempts} left.", param="code",
                             code="phone_code_invalid")
    if status is CheckStatus.NUMBER_IN_USE:
        raise InvalidRequest(_IN_USE, param="phone", code="phone_in_use")
    error_code, message = _FAILURES[status]
    raise InvalidRequest(message, param="code", code=error_code)


def phone_status(conn: sa.Connection, user_id: str, *, rules: PhoneRules,
                 now: dt.datetime | None = None) -> PhoneStatus:
    """The user's verified number and their live code, if any (`rules` gives the cooldown)."""
    now = _now(now)
    user = conn.execute(sa.select(users.c.phone_masked, users.c.phone_verified_at)
                        .where(users.c.id == user_id)).first()
    if user is None:
        raise NotFound(f"no user {user_id!r}")
    pending = None
    row = _pending_code(conn, user_id)
    if row is not None and row.expires_at > now and row.attempts < rules.code_max_attempts:
        latest = conn.execute(sa.select(sa.func.max(phone_codes.c.created_at))
                              .where(phone_codes.c.user_id == user_id)).scalar_one()
        pending = PendingCode(row.phone_masked, row.expires_at,
                              latest + dt.timedelta(seconds=rules.resend_cooldown_s),
                              rules.code_max_attempts - row.attempts)
    verified = user.phone_verified_at is not None
    return PhoneStatus(verified, user.phone_masked if verified else None,
                       user.phone_verified_at, pending)


def prune_codes(conn: sa.Connection, older_than_s: int = 86400,
                now: dt.datetime | None = None) -> int:
    """Delete unverified codes created more than `older_than_s` ago (at least an hour, since
    the hourly caps count them). Returns how many were deleted."""
    if older_than_s < HOUR_S:
        raise ValueError("older_than_s must be at least 3600: the hourly caps count these rows")
    cutoff = _now(now) - dt.timedelta(seconds=older_than_s)
    result = conn.execute(phone_codes.delete().where(phone_codes.c.verified_at.is_(None),
                                                     phone_codes.c.created_at < cutoff))
    return int(result.rowcount)
