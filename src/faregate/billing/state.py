"""Per-organization billing state: consecutive failed charges, suspension, auto-recharge."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from faregate.audit import trail
from faregate.db.schema import billing_states


@dataclass(frozen=True, slots=True)
class BillingState:
    organization_id: str
    failed_charges: int
    suspended_at: dt.datetime | None
    suspended_reason: str | None
    auto_recharge: bool
    auto_recharge_threshold_nano: int | None
    auto_recharge_amount_nano: int | None
    auto_recharge_method_id: str | None

    @property
    def suspended(self) -> bool:
        return self.suspended_at is not None


def get_state(conn: sa.Connection, organization_id: str, *, lock: bool = False) -> BillingState:
    q = sa.select(billing_states).where(billing_states.c.organization_id == organization_id)
    if lock and conn.dialect.name != "sqlite":
        q = q.with_for_update()
    row = conn.execute(q).first()
    if row is None:
        conn.execute(billing_states.insert().values(organization_id=organization_id,
                                                    updated_at=dt.datetime.now(dt.UTC)))
        row = conn.execute(q).one()
    return BillingState(row.organization_id, int(row.failed_charges), row.suspended_at,
                        row.suspended_reason, bool(row.auto_recharge),
                        row.auto_recharge_threshold_nano, row.auto_recharge_amount_nano,
                        row.auto_recharge_method_id)


def _update(conn: sa.Connection, organization_id: str, **values: object) -> None:
    conn.execute(billing_states.update()
                 .where(billing_states.c.organization_id == organization_id)
                 .values(updated_at=dt.datetime.now(dt.UTC), **values))


def record_failed_charge(conn: sa.Connection, organization_id: str, *, threshold: int,
                         reason: str) -> bool:
    """Count a failed charge on a saved card; True when this one suspended billing."""
    st = get_state(conn, organization_id, lock=True)
    failures = st.failed_charges + 1
    _update(conn, organization_id, failed_charges=failures)
    if failures >= threshold and not st.suspended:
        suspend(conn, organization_id, reason=f"{failures} consecutive failed charges "
                                                f"({reason})", actor="system")
        return True
    return False


def record_successful_charge(conn: sa.Connection, organization_id: str, *,
                             reinstate: bool) -> bool:
    """A payment went through: the failure count restarts; True when it lifted a suspension."""
    st = get_state(conn, organization_id, lock=True)
    _update(conn, organization_id, failed_charges=0)
    if st.suspended and reinstate:
        lift_suspension(conn, organization_id, actor="system", reason="a payment succeeded")
        return True
    return False


def suspend(conn: sa.Connection, organization_id: str, *, reason: str, actor: str,
            ip: str | None = None) -> None:
    get_state(conn, organization_id, lock=True)
    _update(conn, organization_id, suspended_at=dt.datetime.now(dt.UTC), suspended_reason=reason,
            auto_recharge=False)
    trail.record(conn, action="billing.suspended", actor=actor, target=organization_id,
                 organization_id=organization_id, ip=ip, detail={"reason": reason})


def lift_suspension(conn: sa.Connection, organization_id: str, *, actor: str, reason: str,
                    ip: str | None = None) -> None:
    _update(conn, organization_id, suspended_at=None, suspended_reason=None, failed_charges=0)
    trail.record(conn, action="billing.reinstated", actor=actor, target=organization_id,
                 organization_id=organization_id, ip=ip, detail={"reason": reason})


def set_auto_recharge(conn: sa.Connection, organization_id: str, *, enabled: bool,
                      threshold_nano: int | None, amount_nano: int | None,
                      method_id: str | None) -> BillingState:
    get_state(conn, organization_id, lock=True)
    _update(conn, organization_id, auto_recharge=enabled,
            auto_recharge_threshold_nano=threshold_nano, auto_recharge_amount_nano=amount_nano,
            auto_recharge_method_id=method_id)
    return get_state(conn, organization_id)
