"""`faregate upstreams add --priority --weight`, `upstreams set`, `upstreams stats`: changes are
audited (no secret in the trail) and the figures read back."""

from __future__ import annotations

import json
import sqlite3

from ._support import Cli


def test_add_set_and_stats(fresh_cli: Cli) -> None:
    added = fresh_cli.json("upstreams", "add", "prov", "--base-url", "http://127.0.0.1:9/v1",
                           "--models", "m1,m2=their-m2", "--priority", "2", "--weight", "3",
                           "--api-key-stdin", stdin="sk-cli-secret\n")
    assert (added["priority"], added["weight"], added["enabled"]) == (2, 3, True)
    assert added["has_stored_key"] is True and "sk-cli-secret" not in json.dumps(added)
    changed = fresh_cli.json("upstreams", "set", "prov", "--weight", "7", "--disable",
                             "--read-timeout-s", "1.5")
    assert (changed["priority"], changed["weight"], changed["enabled"]) == (2, 7, False)
    assert changed["read_timeout_s"] == 1.5
    assert fresh_cli.json("upstreams", "set", "prov", "--enable")["enabled"] is True
    missing = fresh_cli("upstreams", "set", "nobody", "--weight", "2", expect=None)
    assert missing.returncode != 0
    bad = fresh_cli("upstreams", "set", "prov", "--weight", "0", expect=None)
    assert bad.returncode == 2  # typer's range check

    stats = {s["name"]: s for s in fresh_cli.json("upstreams", "stats")}
    assert stats["prov"]["requests"] == 0 and stats["prov"]["breaker"] == "closed"
    assert stats["prov"]["health"] == "unknown"
    assert "prov" in fresh_cli("upstreams", "stats").stdout

    db = sqlite3.connect(fresh_cli.data_dir / "fg.db")
    events = db.execute("SELECT action, actor, detail FROM audit_events "
                        "WHERE action LIKE 'upstream.%' ORDER BY id").fetchall()
    assert [e[0] for e in events] == ["upstream.created", "upstream.changed", "upstream.changed"]
    assert all(e[1].startswith("cli:") for e in events)
    assert json.loads(events[1][2])["after"] == {"weight": 7, "enabled": False,
                                                 "read_timeout_ms": 1500}
    assert not any("sk-cli-secret" in e[2] for e in events)
