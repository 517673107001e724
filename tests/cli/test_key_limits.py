"""`faregate keys set-limit` through the real command: set, keep the period, move to another
period, remove; usage errors; the change is audited with the operator as the actor."""

from __future__ import annotations

import json

import sqlalchemy as sa

from faregate.db.engine import create_engine

from ._support import Cli


def test_keys_set_limit(cli: Cli) -> None:
    cli.json("users", "create", "setlimit@example.com")
    key = cli.json("keys", "create", "setlimit@example.com", "--spend-limit", "10",
                   "--period", "day")
    done = cli.json("keys", "set-limit", key["id"], "--spend-limit", "2.5")
    assert done["spend_limit_usd"] == "2.5" and done["spend_limit_period"] == "day"
    done = cli.json("keys", "set-limit", key["id"], "--period", "week")
    assert done["spend_limit_usd"] == "2.5" and done["spend_limit_period"] == "week"
    done = cli.json("keys", "set-limit", key["id"], "--spend-limit", "0.000000001",
                    "--period", "month")
    assert done["spend_limit_usd"] == "0.000000001" and done["spend_limit_period"] == "month"
    text = cli("keys", "set-limit", key["id"], "--none").stdout
    assert "spend_limit_usd" in text
    done = cli.json("keys", "set-limit", key["id"], "--none")
    assert done["spend_limit_usd"] is None and done["spend_limit_period"] is None

    assert "--spend-limit" in cli("keys", "set-limit", key["id"], expect=2).stderr
    cli("keys", "set-limit", key["id"], "--none", "--spend-limit", "1", expect=2)
    cli("keys", "set-limit", key["id"], "--spend-limit", "0", expect=2)
    cli("keys", "set-limit", key["id"], "--spend-limit", "abc", expect=2)
    cli("keys", "set-limit", key["id"], "--spend-limit", "1", "--period", "year", expect=2)
    # No limit and no period to keep: refused, not guessed.
    assert "period" in cli("keys", "set-limit", key["id"], "--spend-limit", "1",
                           expect=2).stderr
    assert "key_nope" in cli("keys", "set-limit", "key_nope", "--none", expect=1).stderr

    engine = create_engine(cli.database_url)
    try:
        with engine.begin() as conn:
            rows = conn.execute(sa.text(
                "SELECT actor, detail FROM audit_events WHERE target = :k AND action = "
                "'api_key.spend_limit_changed' ORDER BY id"), {"k": key["id"]}).all()
    finally:
        engine.dispose()
    assert len(rows) == 4 and all(r[0].startswith("cli:") for r in rows)
    assert json.loads(rows[0][1])["before"] == {"spend_limit_usd": "10",
                                               "spend_limit_period": "day"}
    assert json.loads(rows[-1][1])["after"] == {"spend_limit_usd": None,
                                               "spend_limit_period": None}
