"""Users, credit grants, balances and API keys through the real command."""

from __future__ import annotations

import re

import pytest

from ._support import Cli

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$")


def test_users_create_and_duplicate(cli: Cli) -> None:
    user = cli.json("users", "create", "Ann@Example.COM")
    assert set(user) == {"id", "email", "organization_id"}
    assert user["email"] == "ann@example.com"
    assert user["id"].startswith("user_")
    assert user["organization_id"].startswith("org_")

    dup = cli("users", "create", "ANN@example.com", expect=1)
    assert dup.stdout == ""
    assert "already exists" in dup.stderr

    bad = cli("users", "create", "not-an-email", expect=2)
    assert "not a valid email" in bad.stderr


def test_grant_is_idempotent_and_counted_once(cli: Cli) -> None:
    user = cli.json("users", "create", "grant@example.com")
    args = ["credits", "grant", "grant@example.com", "5.25", "--reason", "welcome",
            "--idempotency-key", "grant-1"]
    first = cli.json(*args)
    assert set(first) == {"id", "organization_id", "amount_usd", "kind", "reason", "actor",
                          "idempotency_key", "created_at"}
    assert first["organization_id"] == user["organization_id"]
    assert first["amount_usd"] == "5.25"
    assert first["kind"] == "grant"
    assert first["reason"] == "welcome"
    assert first["actor"].startswith("cli:")
    assert len(first["actor"]) > len("cli:")
    assert first["idempotency_key"] == "grant-1"
    assert ISO_UTC.match(first["created_at"])

    again = cli.json(*args)
    assert again["id"] == first["id"]

    other = cli("credits", "grant", "grant@example.com", "6", "--reason", "welcome",
                "--idempotency-key", "grant-1", expect=1)
    assert "idempotency key" in other.stderr

    cli.json("credits", "grant", "grant@example.com", "0.000000001", "--reason", "tiny")
    assert cli.json("balance", "grant@example.com") == {
        "balance_usd": "5.250000001", "held_usd": "0", "available_usd": "5.250000001"}
    text = cli("balance", "grant@example.com").stdout
    assert "5.250000001" in text


@pytest.mark.parametrize("amount", ["abc", "0", "1.0000000001", "-1"])
def test_bad_amounts_are_usage_errors(cli: Cli, amount: str) -> None:
    done = cli("credits", "grant", "nobody@example.com", amount, "--reason", "x", expect=2)
    assert done.stdout == ""
    assert "AMOUNT_USD" in done.stderr


def test_unknown_user_is_not_found(cli: Cli) -> None:
    done = cli("balance", "ghost@example.com", "--json", expect=1)
    assert done.stdout == ""
    assert "ghost@example.com" in done.stderr


def test_keys_create_list_revoke(cli: Cli) -> None:
    cli.json("users", "create", "keys@example.com")
    issued = cli.json("keys", "create", "keys@example.com")
    assert set(issued) == {"id", "key", "redacted", "name"}
    assert issued["name"] == "default"
    key = issued["key"]
    assert key.startswith("sk-fg-")
    assert len(key) >= 40
    assert issued["redacted"] != key
    assert "..." in issued["redacted"]

    named = cli("keys", "create", "keys@example.com", "--name", "ci")
    second_key = named.stdout.strip()
    assert second_key.startswith("sk-fg-")
    assert second_key != key
    assert second_key not in named.stderr

    listed_json = cli("keys", "list", "keys@example.com", "--json").stdout
    listed_text = cli("keys", "list", "keys@example.com").stdout
    for output in (listed_json, listed_text):
        assert key not in output
        assert second_key not in output
        assert issued["redacted"] in output
    rows = cli.json("keys", "list", "keys@example.com")
    assert [set(r) for r in rows] == [{"id", "name", "redacted", "kind", "project_id",
                                       "created_at", "last_used_at", "expires_at",
                                       "revoked_at"}] * 2
    assert {r["kind"] for r in rows} == {"service"}
    assert [r["name"] for r in rows] == ["default", "ci"]
    assert all(r["revoked_at"] is None and ISO_UTC.match(r["created_at"]) for r in rows)

    revoked = cli.json("keys", "revoke", issued["id"])
    assert revoked["id"] == issued["id"]
    assert ISO_UTC.match(revoked["revoked_at"])
    assert key not in str(revoked)
    again = cli.json("keys", "revoke", issued["id"])
    assert again["revoked_at"] == revoked["revoked_at"]
    by_id = {r["id"]: r for r in cli.json("keys", "list", "keys@example.com")}
    assert by_id[issued["id"]]["revoked_at"] == revoked["revoked_at"]

    missing = cli("keys", "revoke", "key_doesnotexist", expect=1)
    assert "key_doesnotexist" in missing.stderr


def test_keys_create_with_a_spend_limit_and_expiry(cli: Cli) -> None:
    cli.json("users", "create", "limited@example.com")
    issued = cli.json("keys", "create", "limited@example.com", "--spend-limit", "2.50",
                      "--period", "week", "--expires-in-days", "30", "--read-only")
    rows = cli.json("keys", "list", "limited@example.com")
    assert rows[0]["id"] == issued["id"] and rows[0]["expires_at"] is not None
    bad = cli("keys", "create", "limited@example.com", "--spend-limit", "2", "--period", "year",
              expect=2)
    assert "day, week or month" in bad.stderr
