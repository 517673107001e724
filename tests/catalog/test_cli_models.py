"""`faregate models add|set|alias|set-group-multiplier`, `faregate price-groups` and
`faregate orgs set-price-group`: the same writes as the console, audited with actor cli:…"""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from tests.cli._support import Cli, make_cli


def _audit(cli: Cli) -> list[tuple[str, str, str, dict[str, object]]]:
    engine = sa.create_engine(cli.database_url)
    try:
        with engine.begin() as conn:
            rows = conn.execute(sa.text(
                "SELECT action, actor, target, detail FROM audit_events ORDER BY id")).all()
    finally:
        engine.dispose()
    return [(r.action, r.actor, r.target, json.loads(r.detail)) for r in rows]


def test_models_and_price_groups_from_the_cli(tmp_path: Path) -> None:
    cli = make_cli(tmp_path, f"sqlite:///{tmp_path / 'fg.db'}")
    made = cli.json("models", "add", "big", "--input", "2.5", "--output", "10",
                    "--min-tier", "1", "--visibility", "hidden", "--context-window", "128000")
    assert (made["input_usd_per_1m"], made["cached_input_usd_per_1m"], made["min_tier"],
            made["visibility"], made["context_window"]) == ("2.5", "2.5", 1, "hidden", 128000)
    changed = cli.json("models", "set", "big", "--output", "12", "--min-tier", "0",
                       "--context-window", "0", "--visibility", "public")
    assert (changed["output_usd_per_1m"], changed["input_usd_per_1m"], changed["min_tier"],
            changed["context_window"], changed["visibility"]) == ("12", "2.5", 0, None, "public")
    cli("models", "alias", "add", "big-latest", "big")
    assert "already an alias" in cli("models", "alias", "add", "big-latest", "big",
                                     expect=1).stderr
    cli("models", "alias", "remove", "big-latest")
    cli("models", "add", "big", expect=1)
    cli("models", "set", "big", "--input", "-1", expect=2)

    group = cli.json("price-groups", "set", "resellers", "0.8", "--description", "partners")
    assert (group["multiplier"], group["multiplier_ppm"]) == ("0.8", 800_000)
    cli("price-groups", "set", "bad", "x1.5", expect=2)
    assert {g["name"] for g in cli.json("price-groups", "list")} == {"default", "resellers"}
    cli("models", "set-group-multiplier", "big", "resellers", "1.25")
    cli("models", "set-group-multiplier", "big", "resellers", "--clear")
    cli("models", "set-group-multiplier", "big", "nope", "2", expect=1)
    cli("users", "create", "someone@example.com")
    out = cli("orgs", "set-price-group", "someone@example.com", "resellers").stdout
    assert "price group resellers" in out
    cli("orgs", "set-price-group", "someone@example.com", "nope", expect=1)

    events = _audit(cli)
    actions = [e[0] for e in events if e[0] != "user.created"]
    assert actions[:8] == [
        "model.created", "model.updated", "model.alias_added", "model.alias_removed",
        "price_group.created", "model.group_multiplier_set", "model.group_multiplier_cleared",
        "organization.price_group_set"]
    ours = [e for e in events if e[0] in actions]
    assert all(e[1].startswith("cli:") for e in ours)
    updated = next(e for e in events if e[0] == "model.updated")
    assert updated[2] == "model:big"
    assert updated[3]["before"] == {"output_nano_per_1m": 10_000_000_000, "min_tier": 1,
                                    "context_window": 128000, "visibility": "hidden"}
    assert updated[3]["after"] == {"output_nano_per_1m": 12_000_000_000, "min_tier": 0,
                                   "context_window": None, "visibility": "public"}
