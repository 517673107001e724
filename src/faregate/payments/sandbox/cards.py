"""Card data checks, as Stripe makes them before any issuer sees the card: Luhn, brand by
prefix, length by brand, expiry, CVC and postal code. Pure functions; each refusal is a
`PaymentError` with Stripe's code and `param`, and a message that never repeats the input."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from faregate.kit.crypto import keyed_hash
from faregate.payments.processor import PaymentError

POSTAL_CODE_MAX_CHARS = 20
EXPIRY_YEARS_AHEAD = 50  # Stripe refuses an expiry year further out than this

# (brand, first-digits ranges) in match order; a range is (low, high) over a prefix length.
_PREFIXES: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("amex", (("34", "34"), ("37", "37"))),
    ("diners", (("36", "36"), ("300", "305"), ("3095", "3095"), ("38", "39"))),
    ("jcb", (("3528", "3589"),)),
    ("discover", (("6011", "6011"), ("644", "649"), ("65", "65"))),
    ("unionpay", (("62", "62"),)),
    ("mastercard", (("51", "55"), ("2221", "2720"))),
    ("visa", (("4", "4"),)),
)
_LENGTHS: dict[str, frozenset[int]] = {
    "visa": frozenset({13, 16, 19}),
    "mastercard": frozenset({16}),
    "amex": frozenset({15}),
    "discover": frozenset({16, 17, 18, 19}),
    "jcb": frozenset({16, 17, 18, 19}),
    "unionpay": frozenset({16, 17, 18, 19}),
    "unknown": frozenset(range(12, 20)),
}


@dataclass(frozen=True, slots=True)
class ValidCard:
    """Card data that passed every check. `number` is only ever held in memory."""

    number: str
    brand: str
    exp_month: int
    exp_year: int
    cvc: str
    postal_code: str

    @property
    def last4(self) -> str:
        return self.number[-4:]

    def __repr__(self) -> str:  # never print the number or CVC
        return f"ValidCard(brand={self.brand!r}, last4={self.last4!r})"


def luhn_ok(number: str) -> bool:
    """The Luhn checksum of a string of digits."""
    if not number.isascii() or not number.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def brand_of(number: str) -> str:
    """visa | mastercard | amex | discover | diners | jcb | unionpay | unknown, by prefix."""
    for brand, ranges in _PREFIXES:
        for low, high in ranges:
            head = number[: len(low)]
            if len(head) == len(low) and low <= head <= high:
                return brand
    return "unknown"


def lengths_for(brand: str, number: str) -> frozenset[int]:
    if brand == "diners":
        return frozenset({14}) if number.startswith("36") else frozenset({14, 16})
    return _LENGTHS[brand]


def cvc_lengths_for(brand: str) -> frozenset[int]:
    if brand == "amex":
        return frozenset({4})
    if brand == "unknown":
        return frozenset({3, 4})
    return frozenset({3})


def normalize_number(raw: str) -> str:
    """What Stripe.js sends: the digits, without the spaces a person types."""
    return raw.replace(" ", "").replace("-", "")


def _card_error(code: str, message: str, param: str) -> PaymentError:
    return PaymentError(message, code=code, param=param)


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


def check_number(raw: str) -> tuple[str, str]:
    """(digits, brand), or incorrect_number / invalid_number."""
    number = normalize_number(raw)
    if not number.isascii() or not number.isdigit() or not 12 <= len(number) <= 19:
        raise _card_error("invalid_number", "Your card number is invalid.", "number")
    brand = brand_of(number)
    if len(number) not in lengths_for(brand, number):
        raise _card_error("invalid_number", "Your card number is invalid.", "number")
    if not luhn_ok(number):
        raise _card_error("incorrect_number", "Your card number is incorrect.", "number")
    return number, brand


def check_expiry(exp_month: object, exp_year: object, *, today: dt.date) -> tuple[int, int]:
    """(month, four-digit year). A past year is invalid_expiry_year (Stripe's test "95"); a
    past month of this year is expired_card; a card is good to the end of its month (UTC)."""
    month = _as_int(exp_month)
    if month is None or not 1 <= month <= 12:
        raise _card_error("invalid_expiry_month", "Your card's expiration month is invalid.",
                          "exp_month")
    year = _as_int(exp_year)
    if year is not None and year < 100:
        year += 2000
    if year is None or year < today.year or year > today.year + EXPIRY_YEARS_AHEAD:
        raise _card_error("invalid_expiry_year", "Your card's expiration year is invalid.",
                          "exp_year")
    if year == today.year and month < today.month:
        raise _card_error("expired_card", "Your card has expired.", "exp_month")
    return month, year


def check_cvc(cvc: str, brand: str) -> str:
    cvc = cvc.strip()
    if not cvc.isascii() or not cvc.isdigit() or len(cvc) not in cvc_lengths_for(brand):
        raise _card_error("invalid_cvc", "Your card's security code is invalid.", "cvc")
    return cvc


def check_postal_code(postal_code: str | None) -> str:
    value = (postal_code or "").strip()
    if not value or len(value) > POSTAL_CODE_MAX_CHARS:
        raise _card_error("incomplete_zip", "Your postal code is incomplete.",
                          "billing_details[address][postal_code]")
    return value


def validate_card(number: str, exp_month: object, exp_year: object, cvc: str,
                  postal_code: str | None, *, today: dt.date | None = None) -> ValidCard:
    """Every check, in the order Stripe reports them: number, expiry, CVC, postal code."""
    digits, brand = check_number(number)
    month, year = check_expiry(exp_month, exp_year, today=today or dt.datetime.now(dt.UTC).date())
    good_cvc = check_cvc(cvc, brand)
    postal = check_postal_code(postal_code)
    return ValidCard(number=digits, brand=brand, exp_month=month, exp_year=year, cvc=good_cvc,
                     postal_code=postal)


def fingerprint(number: str, key: bytes) -> str:
    """The same card number gives the same fingerprint; the number cannot be read back."""
    return keyed_hash(key, number, purpose="sandbox-card-fingerprint")[:32]
