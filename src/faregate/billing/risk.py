"""Risk rules for binding cards, configurable by the operator; every decision is recorded with
its reason (allow / review / block)."""

from __future__ import annotations

import datetime as dt
import ipaddress

import sqlalchemy as sa

from faregate.db.schema import risk_decisions
from faregate.kit.netinfo import parse_networks

BLOCKED_NETWORK = ("Cards cannot be added from this network (a proxy, VPN or data-centre "
                   "address). Connect directly and try again.")


def network_blocked(ip: str, blocked: tuple[str, ...]) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in net for net in parse_networks(blocked))


def record(conn: sa.Connection, *, organization_id: str, ip: str | None, action: str,
           decision: str, reason: str) -> None:
    conn.execute(risk_decisions.insert().values(
        organization_id=organization_id, ip=ip, action=action, decision=decision,
        reason=reason[:300], created_at=dt.datetime.now(dt.UTC)))


def decisions(conn: sa.Connection, organization_id: str, *,
              limit: int = 100) -> list[tuple[dt.datetime, str, str, str]]:
    rows = conn.execute(sa.select(risk_decisions.c.created_at, risk_decisions.c.action,
                                  risk_decisions.c.decision, risk_decisions.c.reason)
                        .where(risk_decisions.c.organization_id == organization_id)
                        .order_by(risk_decisions.c.id.desc()).limit(limit))
    return [(r[0], r[1], r[2], r[3]) for r in rows]
