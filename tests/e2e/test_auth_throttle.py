"""Unknown keys are throttled per client IP: past the budget, unknown keys from that address
get 429 with Retry-After (and cost no database look-up) until the window passes, while a key
that is known and cached keeps working."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.fixtures_gateway import running_gateway

BODY = {"model": "faregate-dev", "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 3}


def test_failed_key_checks_are_throttled_per_ip(tmp_path: Path) -> None:
    with running_gateway(tmp_path / "fg", FAREGATE_AUTH_FAILURES_PER_MINUTE="3") as gw:
        _, good = gw.user()
        assert gw.post("/v1/chat/completions", good, BODY).status_code == 200
        bad = "sk-fg-" + "x" * 43
        statuses = [gw.post("/v1/chat/completions", bad, BODY).status_code for _ in range(3)]
        assert statuses == [401, 401, 401]
        throttled = gw.post("/v1/chat/completions", bad, BODY)
        assert throttled.status_code == 429
        error = throttled.json()["error"]
        assert error["code"] == "rate_limit_exceeded"
        assert int(throttled.headers["retry-after"]) >= 1
        assert bad not in throttled.text
        # A key the server knows (cached for up to 2 s) is not throttled.
        assert gw.post("/v1/chat/completions", good, BODY).status_code == 200
