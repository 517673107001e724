"""Signing in: one generic refusal, attempts counted (and committed) even though each fails,
limits per account and per address, the burst audited once, sessions rotated, hashes upgraded."""

from __future__ import annotations

import dataclasses

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlalchemy.engine import Engine

from faregate.db.runner import Database
from faregate.db.schema import sessions, users
from faregate.errors import AuthenticationFailed, RateLimited
from faregate.identity import sessions as session_service
from faregate.identity.passwords import needs_rehash
from faregate.identity.signin import SignedIn, sign_in
from tests.identity.conftest import PASSWORD, RULES, SECRET, audit, new_user


async def _sign_in(db: Database, email: str, password: str, *, ip: str = "10.0.0.1",
                   previous: str | None = None) -> SignedIn:
    return await sign_in(db, email=email, password=password, ip=ip, user_agent="pytest",
                         previous_session_id=previous, rules=RULES, secret=SECRET)


async def test_sign_in_starts_a_session(engine: Engine, db: Database) -> None:
    user = new_user(engine, "ada@example.com")
    signed = await _sign_in(db, " ADA@example.com", PASSWORD)
    assert signed.user == user
    assert not signed.email_verified
    assert "token" not in repr(signed)
    with engine.begin() as conn:
        found = session_service.authenticate(conn, signed.token, secret=SECRET, idle_s=3600)
    assert found is not None
    assert found.session_id == signed.session_id
    [event] = audit(engine, "auth.signed_in")
    assert event.target == user.id
    assert event.organization_id == user.organization_id
    assert event.ip == "10.0.0.1"


@pytest.mark.parametrize("case", ["wrong_password", "unknown_account", "no_password"])
async def test_every_failure_gets_the_same_answer(engine: Engine, db: Database,
                                                  case: str) -> None:
    new_user(engine, "ada@example.com")
    new_user(engine, "cli@example.com", with_password=False)
    email, password = {"wrong_password": ("ada@example.com", PASSWORD + "!"),
                       "unknown_account": ("nobody@example.com", PASSWORD),
                       "no_password": ("cli@example.com", "")}[case]
    with pytest.raises(AuthenticationFailed) as refused:
        await _sign_in(db, email, password)
    assert refused.value.message == "Incorrect email or password."
    assert refused.value.code == "invalid_credentials"
    assert refused.value.status == 401
    [event] = audit(engine, "auth.sign_in_failed")
    assert event.detail == {"reason": case}


async def test_failures_are_counted_until_the_account_is_throttled(engine: Engine,
                                                                   db: Database) -> None:
    user = new_user(engine, "ada@example.com")
    for i in range(RULES.sign_in_attempts_per_account):
        with pytest.raises(AuthenticationFailed):
            await _sign_in(db, "ada@example.com", f"guess number {i}", ip=f"10.0.1.{i}")
    # The right password no longer helps, from any address, for a while.
    with pytest.raises(RateLimited) as throttled:
        await _sign_in(db, "ada@example.com", PASSWORD, ip="10.0.2.1")
    assert "Too many sign-in attempts for this account" in throttled.value.message
    assert int(throttled.value.headers["retry-after"]) > 0
    assert len(audit(engine, "auth.sign_in_failed")) == RULES.sign_in_attempts_per_account
    [burst] = audit(engine, "auth.sign_in_burst")
    assert burst.target == user.id
    assert burst.organization_id == user.organization_id
    # Other accounts are not affected.
    new_user(engine, "bob@example.com")
    assert (await _sign_in(db, "bob@example.com", PASSWORD, ip="10.0.2.2")).user.email == \
        "bob@example.com"


async def test_burst_is_audited_once_per_window(engine: Engine, db: Database) -> None:
    new_user(engine, "ada@example.com")
    rules = dataclasses.replace(RULES, sign_in_attempts_per_account=2)
    for i in range(2):
        with pytest.raises(AuthenticationFailed):
            await sign_in(db, email="ada@example.com", password="nope nope nope",
                          ip=f"10.0.3.{i}", user_agent=None, previous_session_id=None,
                          rules=rules, secret=SECRET)
    # A higher limit lets more attempts through; the burst is not audited again.
    more = dataclasses.replace(RULES, sign_in_attempts_per_account=4)
    for i in range(2):
        with pytest.raises(AuthenticationFailed):
            await sign_in(db, email="ada@example.com", password="nope nope nope",
                          ip=f"10.0.4.{i}", user_agent=None, previous_session_id=None,
                          rules=more, secret=SECRET)
    assert len(audit(engine, "auth.sign_in_burst")) == 1


async def test_addresses_are_throttled_across_accounts(engine: Engine, db: Database) -> None:
    for i in range(RULES.sign_in_attempts_per_ip):
        with pytest.raises(AuthenticationFailed):
            await _sign_in(db, f"user{i}@example.com", PASSWORD, ip="10.9.9.9")
    new_user(engine, "ada@example.com")
    with pytest.raises(RateLimited, match="from your network"):
        await _sign_in(db, "ada@example.com", PASSWORD, ip="10.9.9.9")
    await _sign_in(db, "ada@example.com", PASSWORD, ip="10.9.9.10")


async def test_sign_in_rotates_the_previous_session(engine: Engine, db: Database) -> None:
    new_user(engine, "ada@example.com")
    first = await _sign_in(db, "ada@example.com", PASSWORD)
    second = await _sign_in(db, "ada@example.com", PASSWORD, previous=first.session_id)
    assert second.session_id != first.session_id
    with engine.begin() as conn:
        assert session_service.authenticate(conn, first.token, secret=SECRET,
                                            idle_s=3600) is None
        assert session_service.authenticate(conn, second.token, secret=SECRET,
                                            idle_s=3600) is not None
        stored = conn.execute(sa.select(sessions.c.token_hash)).scalars().all()
    assert first.token not in stored
    assert second.token not in stored


async def test_an_outdated_hash_is_upgraded_on_sign_in(engine: Engine, db: Database) -> None:
    user = new_user(engine, "ada@example.com")
    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    with engine.begin() as conn:
        conn.execute(users.update().where(users.c.id == user.id).values(password_hash=old))
    await _sign_in(db, "ada@example.com", PASSWORD)
    with engine.begin() as conn:
        stored = conn.execute(sa.select(users.c.password_hash)
                              .where(users.c.id == user.id)).scalar_one()
    assert stored != old
    assert not needs_rehash(stored)
    await _sign_in(db, "ada@example.com", PASSWORD)  # the new hash works
