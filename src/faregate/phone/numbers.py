"""Parse phone numbers to E.164 and decide which ones may receive SMS codes."""

from __future__ import annotations

from dataclasses import dataclass, field

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

_MAX_INPUT_CHARS = 64

_PARSE_ERRORS: dict[int, tuple[str, str]] = {
    NumberParseException.INVALID_COUNTRY_CODE: (
        "invalid_country_code",
        "Enter the number in international format, starting with + and the country code.",
    ),
    NumberParseException.NOT_A_NUMBER: ("not_a_number", "That doesn't look like a phone number."),
    NumberParseException.TOO_SHORT_AFTER_IDD: ("too_short", "That phone number is too short."),
    NumberParseException.TOO_SHORT_NSN: ("too_short", "That phone number is too short."),
    NumberParseException.TOO_LONG: ("too_long", "That phone number is too long."),
}

# Why each refused number type can't be used, as (reason code, message for the user).
_TYPE_REFUSALS: dict[int, tuple[str, str]] = {
    PhoneNumberType.FIXED_LINE: (
        "landline",
        "Landlines can't receive SMS codes; use a mobile number.",
    ),
    PhoneNumberType.PREMIUM_RATE: (
        "premium_rate",
        "Premium-rate numbers aren't accepted; use a mobile number.",
    ),
    PhoneNumberType.VOIP: (
        "voip",
        "Internet (VoIP) numbers aren't accepted; use a mobile number.",
    ),
    PhoneNumberType.TOLL_FREE: (
        "toll_free",
        "Toll-free numbers can't receive SMS codes; use a mobile number.",
    ),
    PhoneNumberType.SHARED_COST: (
        "shared_cost",
        "Shared-cost numbers can't receive SMS codes; use a mobile number.",
    ),
    PhoneNumberType.UAN: (
        "uan",
        "Company switchboard (UAN) numbers can't receive SMS codes; use a mobile number.",
    ),
    PhoneNumberType.PAGER: ("pager", "Pager numbers can't receive SMS codes; use a mobile number."),
    PhoneNumberType.PERSONAL_NUMBER: (
        "personal_number",
        "Personal forwarding numbers aren't accepted; use a mobile number.",
    ),
    PhoneNumberType.VOICEMAIL: (
        "voicemail",
        "Voicemail access numbers can't receive SMS codes; use a mobile number.",
    ),
    PhoneNumberType.UNKNOWN: (
        "unknown_type",
        "We can't tell whether that number can receive SMS codes; use a mobile number.",
    ),
    PhoneNumberType.MOBILE: ("mobile", "Mobile numbers aren't accepted here."),
    PhoneNumberType.FIXED_LINE_OR_MOBILE: (
        "fixed_line_or_mobile",
        "Numbers of this kind aren't accepted here; use a mobile number.",
    ),
}

DEFAULT_ALLOWED_TYPES: frozenset[int] = frozenset(
    {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
)


class PhoneNumberRejected(ValueError):
    """A number that can't be used. `reason` is a stable code; str(exc) is for the user."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _parse(raw: str, default_region: str | None) -> phonenumbers.PhoneNumber:
    text = raw.strip()
    if not text:
        raise PhoneNumberRejected("empty", "Enter a phone number.")
    if len(text) > _MAX_INPUT_CHARS:
        raise PhoneNumberRejected("too_long", "That phone number is too long.")
    region = default_region.upper() if default_region else None
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        reason, message = _PARSE_ERRORS.get(
            exc.error_type, ("not_a_number", "That doesn't look like a phone number.")
        )
        raise PhoneNumberRejected(reason, message) from exc
    if not phonenumbers.is_valid_number(number):
        raise PhoneNumberRejected("invalid_number", "That isn't a valid phone number.")
    return number


def parse_phone(raw: str, default_region: str | None = None) -> str:
    """Parse a number as typed (international, or national when a region is given) to E.164."""
    number = _parse(raw, default_region)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(e164: str) -> str:
    """A number fit for logs: "+8613812345678" → "+86138****5678"."""
    tail = 4
    if len(e164) < 9:
        return e164[:1] + "*" * max(len(e164) - 3, 0) + e164[-2:]
    head = min(6, len(e164) - tail - 4)
    return e164[:head] + "*" * (len(e164) - head - tail) + e164[-tail:]


def _codes(regions: frozenset[str] | set[str] | None) -> frozenset[str] | None:
    return None if regions is None else frozenset(r.upper() for r in regions)


@dataclass(frozen=True)
class PhonePolicy:
    """Which numbers may receive SMS codes: by number type and, optionally, by country.

    Countries are ISO 3166-1 alpha-2 region codes ("GB", "US"); non-geographic numbers
    (+800, +882 …) have region "001". An empty `allowed_countries` allows none.
    """

    allowed_types: frozenset[int] = DEFAULT_ALLOWED_TYPES
    allowed_countries: frozenset[str] | None = None
    blocked_countries: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_types", frozenset(self.allowed_types))
        object.__setattr__(self, "allowed_countries", _codes(self.allowed_countries))
        object.__setattr__(self, "blocked_countries", _codes(self.blocked_countries))

    def check(self, e164: str) -> None:
        """Raise PhoneNumberRejected unless this E.164 number may receive SMS codes."""
        if not e164.startswith("+"):
            raise PhoneNumberRejected(
                "not_e164", "Enter the number in international format, starting with +."
            )
        number = _parse(e164, None)
        region = phonenumbers.region_code_for_number(number) or "ZZ"
        allowed = self.allowed_countries
        if region in self.blocked_countries or (allowed is not None and region not in allowed):
            raise PhoneNumberRejected(
                "country_not_allowed", "Phone numbers from that country aren't accepted."
            )
        kind = phonenumbers.number_type(number)
        if kind not in self.allowed_types:
            reason, message = _TYPE_REFUSALS.get(
                kind, ("type_not_allowed", "That kind of number isn't accepted; use a mobile.")
            )
            raise PhoneNumberRejected(reason, message)

    def accept(self, raw: str, default_region: str | None = None) -> str:
        """parse_phone, then check: the E.164 form of an acceptable number."""
        e164 = parse_phone(raw, default_region)
        self.check(e164)
        return e164


_TYPE_NAMES: dict[str, int] = {
    name: getattr(PhoneNumberType, name)
    for name in ("FIXED_LINE", "MOBILE", "FIXED_LINE_OR_MOBILE", "TOLL_FREE", "PREMIUM_RATE",
                 "SHARED_COST", "VOIP", "PERSONAL_NUMBER", "PAGER", "UAN", "VOICEMAIL",
                 "UNKNOWN")
}


def policy_from_names(types: list[str], allowed_countries: list[str] | None = None,
                      blocked_countries: list[str] | None = None) -> PhonePolicy:
    """A PhonePolicy from settings: type names as in phonenumbers ("MOBILE",
    "FIXED_LINE_OR_MOBILE", case-insensitive). An unknown name raises ValueError."""
    kinds: set[int] = set()
    for name in types:
        key = name.strip().upper()
        if key not in _TYPE_NAMES:
            known = ", ".join(sorted(_TYPE_NAMES))
            raise ValueError(f"unknown phone number type {name!r}; known types: {known}")
        kinds.add(_TYPE_NAMES[key])
    return PhonePolicy(
        allowed_types=frozenset(kinds),
        allowed_countries=None if allowed_countries is None else frozenset(allowed_countries),
        blocked_countries=frozenset(blocked_countries or ()),
    )
