"""The pieces of an SMS code that need no database: the code, its stored HMAC, the SMS text,
and the keys that codes are counted by (number, client network)."""

from __future__ import annotations

import hmac
import ipaddress
import math
import re
import secrets

from faregate.kit.crypto import keyed_hash

CODE_DIGITS = 6
_CODE = re.compile(r"[0-9]{6}")
_MAX_CODE_INPUT_CHARS = 32
_WHITESPACE = re.compile(r"\s+")
_IP_KEY_CHARS = 64  # phone_codes.ip is String(64)


def new_code() -> str:
    """Six random decimal digits, zero-padded ("004271")."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def phone_hash(pepper: bytes, e164: str) -> str:
    """The stored identity of a number: equal numbers give equal hashes, the number stays hidden."""
    return keyed_hash(pepper, e164, purpose="phone")


def code_hmac(pepper: bytes, code_id: str, code: str) -> str:
    """The stored form of a code, bound to its row so a hash can't be reused on another row.
    A plain hash of six digits would be reversed by trying all million of them; the pepper
    (which is not in the database) prevents that."""
    return keyed_hash(pepper, f"{code_id}:{code}", purpose="phone_code")


def normalize_code(text: str) -> str | None:
    """The code as typed, without spaces ("123 456" -> "123456"); None unless six ASCII digits."""
    if len(text) > _MAX_CODE_INPUT_CHARS:
        return None
    code = _WHITESPACE.sub("", text)
    return code if _CODE.fullmatch(code) else None


def code_matches(pepper: bytes, code_id: str, typed: str, stored_hmac: str) -> bool:
    code = normalize_code(typed)
    if code is None:
        return False
    return hmac.compare_digest(code_hmac(pepper, code_id, code), stored_hmac)


def _minutes(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def wait_words(seconds: int) -> str:
    """A wait for people: "1 second", "45 seconds", "3 minutes"."""
    if seconds < 60:
        return "1 second" if seconds == 1 else f"{seconds} seconds"
    return _minutes(seconds)


def sms_text(code: str, *, ttl_s: int = 600) -> str:
    """The message that carries a code. Never log it."""
    return f"Your Faregate verification code is {code}. It expires in {_minutes(ttl_s)}."


def ip_key(ip: str | None) -> str | None:
    """What codes are counted by per client: the address, or for IPv6 its /64 (one subscriber
    usually holds a whole /64, so counting single addresses would not limit anyone)."""
    if ip is None:
        return None
    text = ip.strip()
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return text[:_IP_KEY_CHARS] or None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
