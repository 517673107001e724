"""Password hashing (argon2id, argon2-cffi's recommended parameters) and the password policy.

Hashing and verifying take ~0.1-0.2 s of CPU and 64 MiB on purpose: call them off the event
loop and outside any database transaction (see `identity.signin`)."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from faregate.errors import InvalidRequest
from faregate.identity.common_passwords import COMMON_PASSWORDS

MAX_PASSWORD_CHARS = 256
# A local part shorter than this is too likely to occur by chance to be refused.
_MIN_LOCAL_PART = 3


@functools.cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()  # argon2id, RFC 9106 low-memory profile


@functools.cache
def _dummy_hash() -> str:
    """A hash of nothing anyone knows, to spend the same time when there is no user."""
    return _hasher().hash("faregate-dummy-password-for-timing")


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with other parameters than today's."""
    try:
        return _hasher().check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


def verify_and_upgrade(password_hash: str | None, password: str) -> tuple[bool, str | None]:
    """(matches, new hash when the stored one should be replaced). With no stored hash (a user
    without a password, or no user at all) a dummy hash is verified, so that the answer takes
    as long as for a real user."""
    if password_hash is None:
        verify_password(_dummy_hash(), password)
        return False, None
    if not verify_password(password_hash, password):
        return False, None
    return True, hash_password(password) if needs_rehash(password_hash) else None


def _weak(message: str) -> InvalidRequest:
    return InvalidRequest(message, param="password", code="weak_password")


def check_password_policy(password: str, *, min_length: int, email: str | None = None) -> None:
    """Refuse a password that is too short, too long, one repeated character, contains the
    email address's local part, or is (apart from trailing digits) a common password."""
    if len(password) < min_length:
        raise _weak(f"Your password must be at least {min_length} characters long.")
    if len(password) > MAX_PASSWORD_CHARS:
        raise _weak(f"Your password must be at most {MAX_PASSWORD_CHARS} characters long.")
    if len(set(password)) == 1:
        raise _weak("Your password cannot be a single character repeated.")
    lowered = password.lower()
    if email:
        local = email.rpartition("@")[0].lower()
        if len(local) >= _MIN_LOCAL_PART and local in lowered:
            raise _weak("Your password cannot contain your email address.")
    base = lowered.rstrip("0123456789!?.@#$ ")
    if lowered in COMMON_PASSWORDS or base in COMMON_PASSWORDS:
        raise _weak("This password is one of the most commonly used passwords, which attackers "
                    "try first. Please choose another.")
