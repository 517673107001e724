"""Card binding against an IP-to-country table (FAREGATE_RISK_IP_COUNTRY_CSV, a generated
"IP to country lite" CSV), with clients behind a trusted proxy at different addresses: a card
billed in the country of the client's address is bound as usual; a mismatch is recorded for
review and bound (`review`, the default) or refused (`block`), with both countries named; an
address the table does not know (or loopback) gives no decision from this rule."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from faregate.config import Settings
from faregate.db.schema import risk_decisions
from tests.e2e.api_client import ApiClient, verified_owner
from tests.harness import Deployment

TABLE = '''"start_ip","end_ip","country_code"
198.51.100.0,198.51.100.255,DE
203.0.113.0,203.0.113.255,US
"2001:db8::","2001:db8:ffff:ffff:ffff:ffff:ffff:ffff","FR"
192.0.2.0,192.0.2.255,ZZ
'''
CARDS = itertools.cycle(["4242424242424242", "5555555555554444", "4000056655665556",
                         "6011111111111117", "3566002020360505", "2223003122003222"])


def _owner(dep: Deployment, base: str, via: str) -> tuple[ApiClient, str]:
    """An owner whose requests come from `via` (behind the trusted proxy)."""
    return verified_owner(dep, base, headers={"X-Forwarded-For": via})


def _bind(c: ApiClient, org: str, country: str) -> Any:
    token = c.http.post("/sandbox/v1/payment_methods", json={
        "number": next(CARDS), "exp_month": 12, "exp_year": dt.date.today().year + 3,
        "cvc": "123", "postal_code": "10115",
        "billing": {"name": "Ada", "line1": "1 Main St", "city": "Somewhere",
                    "postal_code": "10115", "country": country}})
    assert token.status_code == 200, token.text
    return c.post(f"/api/orgs/{org}/payment-methods", {"payment_method_id": token.json()["id"]})


def _decisions(dep: Deployment, org: str) -> list[tuple[str, str, str]]:
    with dep.engine.begin() as conn:
        return [(r.ip, r.decision, r.reason) for r in conn.execute(
            sa.select(risk_decisions.c.ip, risk_decisions.c.decision, risk_decisions.c.reason)
            .where(risk_decisions.c.organization_id == org).order_by(risk_decisions.c.id))]


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "dbip-country-lite.csv"
    path.write_text(TABLE)
    return path


def test_review_records_a_mismatch_and_binds(sqlite_dep: Deployment, table: Path) -> None:
    base = sqlite_dep.start_server(FAREGATE_TRUSTED_PROXIES='["127.0.0.1"]',
                                   FAREGATE_RISK_IP_COUNTRY_CSV=str(table)).base_url
    c, org = _owner(sqlite_dep, base, "203.0.113.9")
    assert _bind(c, org, "US").status_code == 201  # the same country: nothing to review
    assert _bind(c, org, "DE").status_code == 201
    c.http.headers["X-Forwarded-For"] = "2001:db8::7"
    assert _bind(c, org, "fr").status_code == 201
    assert _bind(c, org, "US").status_code == 201
    c.http.headers["X-Forwarded-For"] = "192.0.2.1"  # unknown (ZZ) to the table
    assert _bind(c, org, "JP").status_code == 201
    del c.http.headers["X-Forwarded-For"]  # loopback: the proxy's own address
    assert _bind(c, org, "JP").status_code == 201

    decided = _decisions(sqlite_dep, org)
    reviews = [(ip, why) for ip, d, why in decided if d == "review"]
    assert reviews == [
        ("203.0.113.9", "billing country DE differs from the client address's country US"),
        ("2001:db8::7", "billing country US differs from the client address's country FR")]
    assert [d for _, d, _ in decided].count("allow") == 6
    methods = c.get(f"/api/orgs/{org}/billing").json()["payment_methods"]
    assert [m["billing_country"] for m in methods] == ["US", "DE", "FR", "US", "JP", "JP"]


def test_block_refuses_a_mismatch(sqlite_dep: Deployment, table: Path) -> None:
    base = sqlite_dep.start_server(FAREGATE_TRUSTED_PROXIES='["127.0.0.1"]',
                                   FAREGATE_RISK_IP_COUNTRY_CSV=str(table),
                                   FAREGATE_RISK_COUNTRY_MISMATCH="block").base_url
    c, org = _owner(sqlite_dep, base, "198.51.100.20")
    r = _bind(c, org, "US")
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert error["code"] == "risk_country_mismatch"
    assert "billed in US" in error["message"] and "another country" in error["message"]
    assert _decisions(sqlite_dep, org) == [
        ("198.51.100.20", "block",
         "billing country US differs from the client address's country DE")]
    assert c.get(f"/api/orgs/{org}/billing").json()["payment_methods"] == []

    assert _bind(c, org, "DE").status_code == 201
    c.http.headers["X-Forwarded-For"] = "192.0.2.200"  # unknown: no decision from this rule
    assert _bind(c, org, "US").status_code == 201
    assert [d for _, d, _ in _decisions(sqlite_dep, org)] == ["block", "allow", "allow"]


def test_an_untrusted_peer_cannot_claim_a_country(sqlite_dep: Deployment, table: Path) -> None:
    """Without FAREGATE_TRUSTED_PROXIES the forwarded address is ignored: the peer (loopback,
    unknown to the table) is what counts, so a client cannot pick its country."""
    base = sqlite_dep.start_server(FAREGATE_RISK_IP_COUNTRY_CSV=str(table),
                                   FAREGATE_RISK_COUNTRY_MISMATCH="block").base_url
    c, org = _owner(sqlite_dep, base, "198.51.100.20")
    assert _bind(c, org, "US").status_code == 201
    assert [(ip, d) for ip, d, _ in _decisions(sqlite_dep, org)] == [("127.0.0.1", "allow")]


def test_a_missing_table_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        Settings(risk_ip_country_csv=str(tmp_path / "missing.csv"))
