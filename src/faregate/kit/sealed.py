"""Sealed blobs: bytes compressed with zlib, then encrypted (Fernet: AES-128-CBC + HMAC-SHA256).

The key is derived from the server's encryption key (the one kit.crypto.Cipher uses for stored
upstream credentials) under a purpose of its own, so the two never share a key. A sealed blob is
the Fernet token's raw bytes (not its base64 form: a quarter smaller in the database)."""

from __future__ import annotations

import base64
import hashlib
import zlib

from cryptography.fernet import Fernet, InvalidToken

_ZLIB_LEVEL = 6


class Sealer:
    def __init__(self, secret: bytes, *, purpose: str) -> None:
        digest = hashlib.sha256(f"faregate-sealed-v1:{purpose}:".encode() + secret).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def seal(self, data: bytes) -> bytes:
        token = self._fernet.encrypt(zlib.compress(data, _ZLIB_LEVEL))
        return base64.urlsafe_b64decode(token)

    def open(self, blob: bytes) -> bytes:
        try:
            compressed = self._fernet.decrypt(base64.urlsafe_b64encode(blob))
        except InvalidToken as exc:
            raise ValueError("sealed data cannot be opened with this key") from exc
        return zlib.decompress(compressed)
