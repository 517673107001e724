"""Processor amounts (USD cents) and ledger amounts (nano-USD)."""

from __future__ import annotations

from faregate.errors import InvalidRequest
from faregate.kit.money import MoneyFormatError, nano_to_usd, usd_to_nano

NANO_PER_CENT = 10_000_000
CURRENCY = "usd"


def cents_to_nano(cents: int) -> int:
    return cents * NANO_PER_CENT


def nano_to_cents(nano: int) -> int:
    if nano % NANO_PER_CENT:
        raise InvalidRequest("Amounts are charged in whole cents.", param="amount_usd")
    return nano // NANO_PER_CENT


def parse_amount(text: str, *, low_usd: str, high_usd: str, param: str = "amount_usd") -> int:
    """A top-up amount: a decimal USD string in whole cents within [low, high]; nano-USD."""
    try:
        nano = usd_to_nano(text)
    except MoneyFormatError:
        raise InvalidRequest("Enter an amount in dollars, like 10 or 12.50.", param=param) from None
    low, high = usd_to_nano(low_usd), usd_to_nano(high_usd)
    if nano % NANO_PER_CENT:
        raise InvalidRequest("Enter an amount in whole cents.", param=param)
    if not low <= nano <= high:
        raise InvalidRequest(f"Top-ups are from ${nano_to_usd(low)} to ${nano_to_usd(high)}.",
                             param=param, code="amount_out_of_range")
    return nano
