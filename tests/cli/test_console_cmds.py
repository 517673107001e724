"""The console's actions from the CLI: deactivate and reactivate organizations and users,
reset a phone, adjust and grant credit — each audited with actor cli:<login> and findable with
`faregate audit search`."""

from __future__ import annotations

import json

from ._support import Cli


def test_console_commands_are_audited(cli: Cli) -> None:
    user = cli.json("users", "create", "console@example.com")
    org = user["organization_id"]
    cli("credits", "grant", "console@example.com", "5", "--reason", "welcome")
    done = json.loads(cli("credits", "adjust", org, "--reason", "duplicate", "--json", "--",
                          "-1.5").stdout)
    assert done["balance_before_usd"] == "5" and done["balance_after_usd"] == "3.5"
    refused = cli("credits", "adjust", "console@example.com", "--reason", "x", "--", "-100",
                  expect=1)
    assert "available" in refused.stderr
    off = cli.json("orgs", "deactivate", "console@example.com", "--reason", "fraud")
    assert off == {"id": org, "deactivated": True, "deactivated_at": off["deactivated_at"],
                   "reason": "fraud"}
    cli("orgs", "deactivate", org, "--reason", "again", expect=1)
    assert not cli.json("orgs", "reactivate", org, "--reason", "cleared")["deactivated"]
    assert cli.json("users", "deactivate", "console@example.com", "--reason", "x")["deactivated"]
    assert not cli.json("users", "reactivate", user["id"], "--reason", "y")["deactivated"]
    cli("users", "reset-phone", "console@example.com", "--reason", "lost it")

    found = cli.json("audit", "search", "--target", f"org:{org}")
    actions = [e["action"] for e in found["data"]]
    assert actions == ["org.reactivated", "org.deactivated", "credit.adjusted", "credit.granted"]
    assert all(e["actor"].startswith("cli:") for e in found["data"])
    granted = found["data"][-1]
    assert granted["before"] == {"balance_nano": 0, "available_nano": 0}
    assert granted["after"]["balance_nano"] == 5_000_000_000
    users = cli.json("audit", "search", "--action", "user.*", "--limit", "2")
    assert [e["action"] for e in users["data"]] == ["user.phone_reset", "user.reactivated"]
    assert users["next_cursor"] is not None
    cli("audit", "search", "--since", "yesterday", expect=2)
