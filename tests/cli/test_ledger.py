"""`ledger verify` on a sound ledger and on one tampered with behind its back."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from ._support import Cli


def test_verify_ok_then_tampered(fresh_cli: Cli, tmp_path: Path) -> None:
    user = fresh_cli.json("users", "create", "ledger@example.com")
    fresh_cli("credits", "grant", "ledger@example.com", "3", "--reason", "test")

    ok = fresh_cli("ledger", "verify")
    assert ok.stdout.strip() == "ledger OK"
    assert fresh_cli.json("ledger", "verify") == {"ok": True, "problems": []}

    with sqlite3.connect(tmp_path / "fg.db") as db:
        db.execute("UPDATE accounts SET credits_nano = credits_nano + 1 WHERE code = ?",
                   (f"org:{user['organization_id']}:credit",))
    db.close()

    bad = fresh_cli("ledger", "verify", expect=1)
    assert f"org:{user['organization_id']}:credit" in bad.stdout
    assert "ledger OK" not in bad.stdout
    report = fresh_cli("ledger", "verify", "--json", expect=1)
    doc = json.loads(report.stdout)
    assert doc["ok"] is False
    assert any(user["organization_id"] in p for p in doc["problems"])
