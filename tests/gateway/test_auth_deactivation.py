"""The key look-up refuses a deactivated organization's keys, and a deactivated creator's, with
OpenAI's 401 account_deactivated; reactivation lifts it (entries live at most the cache's TTL:
0 here, so every call looks again)."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from faregate.api_keys.service import issue_key
from faregate.console import actions
from faregate.db.runner import Database
from faregate.errors import AuthenticationFailed
from faregate.gateway.auth import KeyAuthenticator
from tests.factories import funded_user

PEPPER = b"test-pepper"


async def test_deactivated_accounts_get_account_deactivated(engine: Engine,
                                                            db: Database) -> None:
    with engine.begin() as conn:
        user = funded_user(conn, 10**9)
        key = issue_key(conn, organization_id=user.organization_id, user_id=user.id,
                        name="k", pepper=PEPPER).key
    auth = KeyAuthenticator(db, PEPPER, ttl_s=0.0, failures_per_minute=3)
    assert (await auth.authenticate(f"Bearer {key}", "10.0.0.1")).deactivated is None
    for kind in ("org", "user"):
        with engine.begin() as conn:
            if kind == "org":
                actions.set_org_active(conn, user.organization_id, active=False, reason="x",
                                       actor="t")
            else:
                actions.set_user_active(conn, user.id, active=False, reason="x", actor="t")
        # Refused every time, and never throttled as a bad key would be.
        for _ in range(5):
            with pytest.raises(AuthenticationFailed) as refused:
                await auth.authenticate(f"Bearer {key}", "10.0.0.1")
            assert refused.value.status == 401
            assert refused.value.body()["error"] == {
                "message": "This key is associated with a deactivated account. If you feel "
                           "this is an error, contact the operator of this Faregate server.",
                "type": "invalid_request_error", "param": None, "code": "account_deactivated"}
        with engine.begin() as conn:
            if kind == "org":
                actions.set_org_active(conn, user.organization_id, active=True, reason="y",
                                       actor="t")
            else:
                actions.set_user_active(conn, user.id, active=True, reason="y", actor="t")
        assert (await auth.authenticate(f"Bearer {key}", "10.0.0.1")).key_id
