"""The core operator flow once against PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._support import make_cli

pytestmark = pytest.mark.postgres


def test_core_flow_on_postgres(pg_database: str, tmp_path: Path) -> None:
    cli = make_cli(tmp_path, pg_database)
    user = cli.json("users", "create", "pg@example.com")
    cli("users", "create", "pg@example.com", expect=1)

    grant = ["credits", "grant", "pg@example.com", "12.345678901", "--reason", "pg",
             "--idempotency-key", "pg-1"]
    first = cli.json(*grant)
    assert first["organization_id"] == user["organization_id"]
    assert first["amount_usd"] == "12.345678901"
    assert first["created_at"].endswith(("Z", "+00:00"))
    assert cli.json(*grant)["id"] == first["id"]
    cli("credits", "grant", "pg@example.com", "1", "--reason", "pg", "--idempotency-key", "pg-1",
        expect=1)
    assert cli.json("balance", "pg@example.com") == {
        "balance_usd": "12.345678901", "held_usd": "0", "available_usd": "12.345678901"}

    issued = cli.json("keys", "create", "pg@example.com", "--name", "pg")
    revoked = cli.json("keys", "revoke", issued["id"])
    listed = cli("keys", "list", "pg@example.com", "--json").stdout
    assert issued["key"] not in listed
    assert revoked["revoked_at"] in listed

    cli("upstreams", "add", "up", "--base-url", "https://up.example/v1", "--models", "m",
        "--api-key-stdin", stdin="sk-pg-secret\n")
    cli("models", "set-price", "m", "--input", "0.15", "--output", "0.6")
    (model,) = cli.json("models", "list")
    assert (model["input_usd_per_1m"], model["output_usd_per_1m"]) == ("0.15", "0.6")

    assert cli("ledger", "verify").stdout.strip() == "ledger OK"
