"""API key generation and hashing; symmetric encryption of stored upstream credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken

KEY_PREFIX = "sk-fg-"
ADMIN_KEY_PREFIX = "sk-fg-admin-"
_KEY_RANDOM_BYTES = 32  # 256 bits


def generate_api_key(prefix: str = KEY_PREFIX) -> str:
    return prefix + base64.urlsafe_b64encode(secrets.token_bytes(_KEY_RANDOM_BYTES)).decode(
        "ascii"
    ).rstrip("=")


def hash_api_key(key: str, pepper: bytes) -> str:
    """HMAC-SHA256 of the key with the server's pepper; the only form a key is stored in."""
    return hmac.new(pepper, key.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def redact_api_key(key: str) -> str:
    prefix = ADMIN_KEY_PREFIX if key.startswith(ADMIN_KEY_PREFIX) else KEY_PREFIX
    return f"{key[: len(prefix) + 3]}...{key[-4:]}"


def looks_like_api_key(key: str) -> bool:
    return key.startswith(KEY_PREFIX) and 40 <= len(key) <= 72


class Cipher:
    """Fernet (AES-128-CBC + HMAC) keyed from a server secret."""

    def __init__(self, secret: bytes) -> None:
        digest = hashlib.sha256(b"faregate-encryption-v1" + secret).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except InvalidToken as exc:
            raise ValueError("stored credential cannot be decrypted with this key") from exc


def new_token(nbytes: int = 32) -> str:
    """A random URL-safe token (session cookies, email links, invitations)."""
    return secrets.token_urlsafe(nbytes)


def keyed_hash(secret: bytes, value: str, *, purpose: str) -> str:
    """HMAC-SHA256 of `value` under `secret`, separated by `purpose`; the stored form of tokens,
    codes and identifiers we must recognise but not reveal."""
    return hmac.new(secret, f"{purpose}\x00{value}".encode("utf-8", "surrogatepass"),
                    hashlib.sha256).hexdigest()
