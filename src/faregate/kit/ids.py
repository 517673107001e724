"""Identifiers: prefixed random ids for public objects."""

from __future__ import annotations

import random
import secrets

# Request ids need to be unique, not secret: a PRNG seeded from the OS is enough, and spares
# the hot path a system call per request.
_request_ids = random.Random(secrets.randbits(128))


def new_id(prefix: str, nbytes: int = 12) -> str:
    return f"{prefix}_{secrets.token_hex(nbytes)}"


def request_id() -> str:
    return f"req_{_request_ids.getrandbits(128):032x}"
