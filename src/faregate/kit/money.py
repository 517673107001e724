"""Money is integer nano-USD (10^-9 USD). Decimal strings only at the edges; never floats."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

NANO_PER_USD = 1_000_000_000
TOKENS_PER_PRICE_UNIT = 1_000_000
MAX_NANO_USD = 2**63 - 1


class MoneyFormatError(ValueError):
    pass


def usd_to_nano(text: str) -> int:
    """Parse a decimal USD string ("5", "0.25", "1.000000001") into nano-USD, exactly."""
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError) as exc:
        raise MoneyFormatError(f"not a decimal amount: {text!r}") from exc
    if not value.is_finite():
        raise MoneyFormatError(f"not a finite amount: {text!r}")
    nano = value * NANO_PER_USD
    if nano != nano.to_integral_value():
        raise MoneyFormatError(f"more than 9 decimal places: {text!r}")
    result = int(nano)
    if abs(result) > MAX_NANO_USD:
        raise MoneyFormatError(f"amount out of range: {text!r}")
    return result


def nano_to_usd(nano: int) -> str:
    """Render nano-USD as a plain decimal string with up to 9 decimals ("1.5", "0.000000001")."""
    sign = "-" if nano < 0 else ""
    whole, frac = divmod(abs(nano), NANO_PER_USD)
    if frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:09d}".rstrip("0")


def cost_nano(tokens_times_price: int) -> int:
    """ceil(Σ tokens × price_per_1M / 10^6), the one rounding of a request's cost."""
    return -(-tokens_times_price // TOKENS_PER_PRICE_UNIT)
