"""Redemption codes: the operator issues codes of a fixed value (single use, optional expiry);
an owner redeems one for credit. Useful where cards are hard to get. Codes are stored only as
keyed hashes; attempts are throttled per user and per client address."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from faregate.audit import trail
from faregate.db.schema import redemption_codes
from faregate.errors import InvalidRequest
from faregate.identity.access import require_owner
from faregate.kit.crypto import keyed_hash
from faregate.kit.ids import new_id
from faregate.ledger.accounts import GRANTS, account_id, org_account_id
from faregate.ledger.lots import open_lot
from faregate.ledger.transfers import Transfer, post_transfer
from faregate.throttle import limiter

ATTEMPTS_PER_USER_PER_HOUR = 10
ATTEMPTS_PER_IP_PER_HOUR = 30
_NOT_VALID = "This code is not valid. Check it and try again."


def _normalize(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def _hash(code: str, secret: bytes) -> str:
    return keyed_hash(secret, _normalize(code), purpose="redemption")


def _new_code() -> str:
    raw = base64.b32encode(secrets.token_bytes(10)).decode().rstrip("=")  # 80 bits, 16 chars
    return "FG-" + "-".join(raw[i:i + 4] for i in range(0, 16, 4))


@dataclass(frozen=True, slots=True)
class CodeInfo:
    id: str
    hint: str
    amount_nano: int
    created_at: dt.datetime
    expires_at: dt.datetime | None
    redeemed_at: dt.datetime | None
    redeemed_by_organization: str | None


def issue_codes(conn: sa.Connection, *, amount_nano: int, count: int,
                expires_at: dt.datetime | None, actor: str, secret: bytes) -> list[str]:
    """Make `count` codes worth `amount_nano` each; the codes are returned once."""
    if amount_nano <= 0 or not 1 <= count <= 1000:
        raise InvalidRequest("Give a positive amount and 1 to 1000 codes.")
    now = dt.datetime.now(dt.UTC)
    codes = [_new_code() for _ in range(count)]
    conn.execute(redemption_codes.insert(), [
        {"id": new_id("rc"), "code_hash": _hash(c, secret), "hint": c[-4:],
         "amount_nano": amount_nano, "created_by": actor, "created_at": now,
         "expires_at": expires_at} for c in codes])
    trail.record(conn, action="redemption_codes.issued", actor=actor,
                 detail={"count": count, "amount_nano": amount_nano})
    return codes


def list_codes(conn: sa.Connection, *, limit: int = 200) -> list[CodeInfo]:
    rows = conn.execute(sa.select(redemption_codes)
                        .order_by(redemption_codes.c.created_at.desc()).limit(limit))
    return [CodeInfo(r.id, r.hint, int(r.amount_nano), r.created_at, r.expires_at,
                     r.redeemed_at, r.redeemed_by_organization) for r in rows]


def gate(conn: sa.Connection, *, organization_id: str, user_id: str, ip: str,
         secret: bytes) -> None:
    """Owner check and attempt counting, committed before the code is looked at."""
    require_owner(conn, organization_id, user_id)
    limiter.gate(conn, limits=[("redeem_user", user_id, ATTEMPTS_PER_USER_PER_HOUR),
                               ("redeem_ip", ip, ATTEMPTS_PER_IP_PER_HOUR)],
                 window_s=3600, secret=secret, message="Too many redemption attempts.")


def redeem(conn: sa.Connection, *, code: str, organization_id: str, user_id: str, ip: str,
           secret: bytes) -> Transfer:
    q = sa.select(redemption_codes).where(redemption_codes.c.code_hash == _hash(code, secret))
    if conn.dialect.name != "sqlite":
        q = q.with_for_update()
    row = conn.execute(q).first()
    if row is None or len(_normalize(code)) < 8:
        raise InvalidRequest(_NOT_VALID, param="code", code="invalid_code")
    if row.redeemed_at is not None:
        raise InvalidRequest("This code has already been used.", param="code",
                             code="code_used")
    now = dt.datetime.now(dt.UTC)
    if row.expires_at is not None and row.expires_at <= now:
        raise InvalidRequest("This code has expired.", param="code", code="code_expired")
    done = conn.execute(redemption_codes.update()
                        .where(redemption_codes.c.id == row.id,
                               redemption_codes.c.redeemed_at.is_(None))
                        .values(redeemed_at=now, redeemed_by_organization=organization_id,
                                redeemed_by_user=user_id))
    if done.rowcount != 1:
        raise InvalidRequest("This code has already been used.", param="code",
                             code="code_used")
    transfer = post_transfer(
        conn, debit_account_id=account_id(conn, GRANTS),
        credit_account_id=org_account_id(conn, organization_id),
        amount_nano=int(row.amount_nano), kind="redemption", actor=f"user:{user_id}",
        reason=f"redemption code …{row.hint}", idempotency_key=f"redeem:{row.id}")
    open_lot(conn, transfer, kind="paid")  # codes are usually sold: paid credit, which expires
    trail.record(conn, action="redemption_code.redeemed", actor=f"user:{user_id}",
                 target=row.id, organization_id=organization_id, ip=ip,
                 detail={"amount_nano": int(row.amount_nano), "hint": row.hint})
    return transfer
