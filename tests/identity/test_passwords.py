"""argon2id hashing and the password policy (no database)."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from faregate.errors import InvalidRequest
from faregate.identity.passwords import (
    MAX_PASSWORD_CHARS,
    check_password_policy,
    hash_password,
    needs_rehash,
    verify_and_upgrade,
    verify_password,
)


def test_hash_is_argon2id_and_verifies_only_the_password() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored
    assert verify_password(stored, "correct horse battery")
    assert not verify_password(stored, "correct horse batterY")
    assert not verify_password("not a hash", "correct horse battery")
    assert not needs_rehash(stored)


def test_old_parameters_are_upgraded_on_a_successful_check() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("a fine password")
    assert needs_rehash(weak)
    assert verify_and_upgrade(weak, "a wrong password") == (False, None)
    matched, new_hash = verify_and_upgrade(weak, "a fine password")
    assert matched
    assert new_hash is not None
    assert not needs_rehash(new_hash)
    assert verify_password(new_hash, "a fine password")
    current = hash_password("a fine password")
    assert verify_and_upgrade(current, "a fine password") == (True, None)


def test_no_stored_hash_never_matches() -> None:
    assert verify_and_upgrade(None, "") == (False, None)
    assert verify_and_upgrade(None, "faregate-dummy-password-for-timing") == (False, None)


@pytest.mark.parametrize(("password", "words"), [
    ("short1!", "at least 10 characters"),
    ("x" * (MAX_PASSWORD_CHARS + 1), "at most 256 characters"),
    ("aaaaaaaaaaaaaaa", "single character repeated"),
    ("my-ada.lovelace-2024", "cannot contain your email"),
    ("MY-ADA.LOVELACE-2024", "cannot contain your email"),
    ("qwertyuiop", "most commonly used"),
    ("Password1234", "most commonly used"),
    ("sunshine2024!", "most commonly used"),
])
def test_policy_refuses_with_a_clear_message(password: str, words: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_password_policy(password, min_length=10, email="Ada.Lovelace@example.com")
    assert words in refused.value.message
    assert refused.value.param == "password"
    assert refused.value.code == "weak_password"
    assert password not in refused.value.message


@pytest.mark.parametrize("password", [
    "correct horse battery staple", "x" * 255 + "y", "ab" * 5, "Tr0ub4dor&3-extended",
])
def test_policy_accepts_reasonable_passwords(password: str) -> None:
    check_password_policy(password, min_length=10, email="ada@example.com")


def test_short_local_parts_are_not_held_against_the_password() -> None:
    check_password_policy("a perfectly good one", min_length=10, email="al@example.com")
    with pytest.raises(InvalidRequest):
        check_password_policy("ada is my name ok", min_length=10, email="ada@example.com")
