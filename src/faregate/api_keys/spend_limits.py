"""Changing a key's spend limit after it was issued.

The limit of the current period is a guarded ledger account (ledger/limits.py). A change moves
that account to the new limit in the same transaction as the key: a raise at once; a lowering
gives back at once what no request holds. What servers' leases still hold comes back as they
notice the change (within the key cache's 2 s: gateway/limits.py) and, for anything left over,
through the worker's limit job (`bring_to_limit`). A new period starts from the new limit;
a changed period counts from its own account, made on its first request."""

from __future__ import annotations

from types import EllipsisType

import sqlalchemy as sa

from faregate.api_keys.service import KeyInfo, get_key
from faregate.audit import trail
from faregate.db.schema import accounts, api_keys
from faregate.errors import InvalidRequest
from faregate.kit.money import nano_to_usd
from faregate.ledger.accounts import lock_available
from faregate.ledger.limits import (
    PERIODS,
    Period,
    key_limit_code,
    limit_use,
    resize_limit,
    window,
)


def _shown(nano: int | None, period: str | None) -> dict[str, str | None]:
    return {"spend_limit_usd": nano_to_usd(nano) if nano is not None else None,
            "spend_limit_period": period if nano is not None else None}


Keep = EllipsisType  # the `...` of an argument left as it is


def set_spend_limit(conn: sa.Connection, key_id: str, *, organization_id: str,
                    limit_nano: int | Keep | None, period: Period | Keep | None,
                    actor: str, ip: str | None = None) -> KeyInfo:
    """Set (an amount and a period), remove (limit None) or keep (...) a key's spend limit and
    its period; an amount without a period keeps the key's period, a period alone keeps its
    amount. Recorded in the audit trail with the limit before and after. No permission
    checks: callers check who may."""
    if conn.dialect.name != "sqlite":  # one change at a time per key (SQLite: one writer)
        conn.execute(sa.select(api_keys.c.id).where(api_keys.c.id == key_id).with_for_update())
    before = get_key(conn, key_id, organization_id=organization_id)
    if before.revoked_at is not None:
        raise InvalidRequest("This key is revoked; its limit cannot change.", param="key_id",
                             code="api_key_revoked")
    if isinstance(limit_nano, EllipsisType):
        if isinstance(period, EllipsisType) or period is None:
            raise InvalidRequest("Send spend_limit_usd (null removes the limit) and/or "
                                 "spend_limit_period.", param="spend_limit_usd")
        if before.spend_limit_nano is None:
            raise InvalidRequest("This key has no spend limit: send spend_limit_usd with the "
                                 "period.", param="spend_limit_usd")
        limit_nano = before.spend_limit_nano
    if limit_nano is None:
        if not isinstance(period, EllipsisType) and period is not None:
            raise InvalidRequest("A key without a spend limit takes no period.",
                                 param="spend_limit_period")
        period = None
    else:
        if before.kind == "admin":
            raise InvalidRequest("Admin keys read the organization's usage and costs; they "
                                 "take no spend limit.", param="spend_limit_usd")
        if limit_nano <= 0:
            raise InvalidRequest("The spend limit must be more than zero (send null to "
                                 "remove it).", param="spend_limit_usd", code="invalid_value")
        if isinstance(period, EllipsisType) or period is None:
            if before.spend_limit_period not in PERIODS:
                raise InvalidRequest("A spend limit needs a period: day, week or month.",
                                     param="spend_limit_period")
            period = before.spend_limit_period
        if period not in PERIODS:
            raise InvalidRequest("The spend limit period must be day, week or month.",
                                 param="spend_limit_period")
    conn.execute(api_keys.update().where(api_keys.c.id == key_id)
                 .values(spend_limit_nano=limit_nano, spend_limit_period=period))
    if limit_nano is not None and period is not None:
        resize_limit(conn, key_limit_code(key_id, window(period)), limit_nano, actor=actor)
    old = _shown(before.spend_limit_nano, before.spend_limit_period)
    new = _shown(limit_nano, period)
    if old != new:
        trail.record(conn, action="api_key.spend_limit_changed", actor=actor, target=key_id,
                     organization_id=before.organization_id, ip=ip,
                     detail={"name": before.name, "redacted": before.redacted, "before": old,
                             "after": new})
    return get_key(conn, key_id)


def limits_off_target(conn: sa.Connection) -> list[str]:
    """Active keys whose current period's limit account may be off the key's limit: credits
    under it (an account a server made from a key cache a moment old), or credits over it with
    something available to give back (a lowered limit whose held part has come free since).
    An account lowered earlier keeps credits over its limit in force, so some of these are
    already right: `bring_to_limit` checks each exactly."""
    found: list[str] = []
    available = accounts.c.credits_nano - accounts.c.debits_nano - accounts.c.held_nano
    for period in PERIODS:
        prefix, suffix = key_limit_code("\0", window(period)).split("\0")
        code = sa.literal(prefix) + api_keys.c.id + sa.literal(suffix)
        found += [str(k) for k in conn.execute(
            sa.select(api_keys.c.id)
            .join(accounts, accounts.c.code == code)
            .where(api_keys.c.spend_limit_period == period,
                   api_keys.c.spend_limit_nano.is_not(None), api_keys.c.revoked_at.is_(None),
                   sa.or_(accounts.c.credits_nano < api_keys.c.spend_limit_nano,
                          sa.and_(accounts.c.credits_nano > api_keys.c.spend_limit_nano,
                                  available > 0)))).scalars()]
    return found


def _limit_of(conn: sa.Connection, key_id: str) -> tuple[int, Period] | None:
    row = conn.execute(sa.select(api_keys.c.spend_limit_nano, api_keys.c.spend_limit_period,
                                 api_keys.c.revoked_at).where(api_keys.c.id == key_id)).first()
    if row is None or row.revoked_at is not None or row.spend_limit_nano is None \
            or row.spend_limit_period not in PERIODS:
        return None
    return int(row.spend_limit_nano), row.spend_limit_period


def bring_to_limit(conn: sa.Connection, key_id: str, *, actor: str = "worker") -> bool:
    """Move the key's current-period limit account to the key's limit as it stands now; True
    if anything moved. The account's row is locked before the limit is read: a change being
    made meanwhile resizes the account after this transaction (its resize waits for the
    lock), so this never undoes it."""
    first = _limit_of(conn, key_id)
    if first is None:
        return False
    code = key_limit_code(key_id, window(first[1]))
    acct = conn.execute(sa.select(accounts.c.id).where(accounts.c.code == code)).scalar()
    if acct is None:
        return False
    lock_available(conn, int(acct))
    now = _limit_of(conn, key_id)
    if now is None or now[1] != first[1]:
        return False
    use = limit_use(conn, code)
    if use is None or use.limit_nano == now[0]:
        return False
    return resize_limit(conn, code, now[0], actor=actor) != use.limit_nano
