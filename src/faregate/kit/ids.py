"""Identifiers: prefixed random ids for public objects."""

from __future__ import annotations

import secrets


def new_id(prefix: str, nbytes: int = 12) -> str:
    return f"{prefix}_{secrets.token_hex(nbytes)}"


def request_id() -> str:
    return "req_" + secrets.token_hex(16)
