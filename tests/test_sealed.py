"""Sealed blobs (kit/sealed.py): compressed then encrypted; only the same key and purpose open
them, and a changed byte is refused."""

from __future__ import annotations

import pytest

from faregate.kit.sealed import Sealer


def test_seal_round_trip_and_refusals() -> None:
    sealer = Sealer(b"server-secret", purpose="request-log")
    data = b'{"messages":[{"content":"the same words again "}]}' * 200
    blob = sealer.seal(data)
    assert sealer.open(blob) == data
    assert len(blob) < len(data) // 5  # compressed before encryption
    assert b"the same words" not in blob
    assert sealer.seal(data) != blob  # a fresh IV each time
    with pytest.raises(ValueError, match="cannot be opened"):
        Sealer(b"server-secret", purpose="other").open(blob)
    with pytest.raises(ValueError, match="cannot be opened"):
        Sealer(b"another-secret", purpose="request-log").open(blob)
    tampered = bytearray(blob)
    tampered[40] ^= 1
    with pytest.raises(ValueError, match="cannot be opened"):
        sealer.open(bytes(tampered))
