"""Risk rules for binding cards, configurable by the operator; every decision is recorded with
its reason (allow / review / block)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import sqlalchemy as sa

from faregate.billing import ipcountry
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


@dataclass(frozen=True, slots=True)
class CountryRule:
    """Billing country against the client address's country (FAREGATE_RISK_IP_COUNTRY_CSV):
    a mismatch is recorded for review, or refused (`block`)."""

    csv: Path | None = None
    on_mismatch: Literal["review", "block"] = "review"


def country_mismatch(rule: CountryRule, ip: str, billing_country: str | None) -> str | None:
    """The reason to record when the card's billing country is not the country the client
    address is in; None when it is, or when either is unknown (no table, an address the table
    does not list, a private or loopback address, no billing country)."""
    if rule.csv is None or not billing_country:
        return None
    ip_country = ipcountry.table_for(rule.csv).country_of(ip)
    billing = billing_country.strip().upper()
    if ip_country is None or ip_country == billing:
        return None
    return f"billing country {billing} differs from the client address's country {ip_country}"


def country_blocked(billing_country: str) -> str:
    return (f"Cards billed in {billing_country.strip().upper()} cannot be added from a network "
            "in another country. Add the card from where you live, or contact support.")


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
