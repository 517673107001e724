"""An operator changes their own password: the current one is checked (and counted like a
sign-in attempt), the policy applies, their other sessions end."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from faregate.db.runner import Database
from faregate.db.schema import operator_sessions
from faregate.errors import InvalidRequest, RateLimited
from faregate.identity.passwords import verify_password
from faregate.operators import accounts
from faregate.operators.self_service import change_password
from faregate.operators.signin import OperatorSignedIn, SecondFactor, sign_in
from tests.operators.conftest import CIPHER, PASSWORD, RULES, SECRET, audit, code, make_operator

NEW = "a brand new passphrase 7"


async def _sign_in(db: Database, password: str, totp_code: str) -> OperatorSignedIn:
    return await sign_in(db, email="root@example.com", password=password,
                         factor=SecondFactor(totp_code), ip="10.0.0.1", user_agent=None,
                         previous_session_id=None, rules=RULES, secret=SECRET, cipher=CIPHER)


async def test_change_own_password(engine: Engine, db: Database) -> None:
    made = make_operator(engine, "root@example.com")
    here = (await _sign_in(db, PASSWORD, code(made))).principal
    await _sign_in(db, PASSWORD, code(made, 1))  # another browser

    with pytest.raises(InvalidRequest) as wrong:
        await change_password(db, here, current_password="not it at all", new_password=NEW,
                              ip="10.0.0.1", rules=RULES, secret=SECRET)
    assert wrong.value.code == "incorrect_password"
    assert len(audit(engine, "operator.password_change_failed")) == 1
    with pytest.raises(InvalidRequest) as weak:
        await change_password(db, here, current_password=PASSWORD, new_password="short",
                              ip="10.0.0.1", rules=RULES, secret=SECRET)
    assert weak.value.code == "weak_password"
    await change_password(db, here, current_password=PASSWORD, new_password=NEW,
                          ip="10.0.0.1", rules=RULES, secret=SECRET)

    with engine.begin() as conn:
        assert verify_password(accounts.password_hash_of(conn, here.operator_id), NEW)
        live = set(conn.execute(sa.select(operator_sessions.c.id).where(
            operator_sessions.c.revoked_at.is_(None))).scalars())
    assert live == {here.session_id}
    [event] = audit(engine, "operator.password_set")
    assert event.actor == here.actor
    assert event.detail == {"sessions_ended": 1, "before": None, "after": None}
    # Two sign-ins and two checks of the current password (the weak new one was refused
    # before any check) used up the account's four attempts.
    with pytest.raises(RateLimited):
        await _sign_in(db, NEW, code(made, 1))
