"""Price groups: an organization's prices are the model's prices times a multiplier.

Multipliers are integer parts per million (1_000_000 = x1, 1_500_000 = x1.5, 0 = free), so a
group's price is exact: each component is ceil(price × ppm / 10^6), rounded up once, never in
the customer's favour by more than one nano-USD per 1M tokens and never below the true product.
Which multiplier applies: the model's own for the group if one is set, else the group's, else
x1 (an unknown group pays list price)."""

from __future__ import annotations

from collections.abc import Mapping

from faregate.pricing.cost import Price

PPM_ONE = 1_000_000  # x1
MAX_MULTIPLIER_PPM = 1_000 * PPM_ONE  # x1000: a limit, so that a typo cannot price a model absurdly
DEFAULT_GROUP = "default"


def multiplier_ppm(model_id: str, group: str, group_ppm: Mapping[str, int],
                   model_ppm: Mapping[tuple[str, str], int]) -> int:
    """The multiplier in force for `model_id` in `group`."""
    own = model_ppm.get((model_id, group))
    if own is not None:
        return own
    return group_ppm.get(group, PPM_ONE)


def _times(nano_per_1m: int, ppm: int) -> int:
    return -(-nano_per_1m * ppm // PPM_ONE)


def multiplied(price: Price, ppm: int) -> Price:
    """`price` times `ppm` / 10^6, each component rounded up to a whole nano-USD."""
    if ppm == PPM_ONE:
        return price
    if ppm < 0:
        raise ValueError(f"a multiplier cannot be negative: {ppm}")
    return Price(_times(price.input_nano_per_1m, ppm),
                 _times(price.cached_input_nano_per_1m, ppm),
                 _times(price.output_nano_per_1m, ppm))


def group_price(price: Price, model_id: str, group: str, group_ppm: Mapping[str, int],
                model_ppm: Mapping[tuple[str, str], int]) -> Price:
    """The price `group` pays for `model_id`, whose list price is `price`."""
    return multiplied(price, multiplier_ppm(model_id, group, group_ppm, model_ppm))


def ppm_to_text(ppm: int) -> str:
    """1_500_000 -> "1.5" (exact; for people)."""
    whole, frac = divmod(ppm, PPM_ONE)
    return str(whole) if frac == 0 else f"{whole}.{frac:06d}".rstrip("0")


def text_to_ppm(text: str) -> int:
    """"1.5" -> 1_500_000, exactly; ValueError when it is not a decimal with at most 6 places
    in [0, MAX]."""
    raw = text.strip()
    whole, dot, frac = raw.partition(".")
    if (not whole and not frac) or not (whole or "0").isdigit() or \
            (dot and not frac.isdigit()) or len(frac) > 6:
        raise ValueError(f"not a multiplier (a decimal with at most 6 places): {text!r}")
    ppm = int(whole or "0") * PPM_ONE + int((frac or "0").ljust(6, "0"))
    if ppm > MAX_MULTIPLIER_PPM:
        raise ValueError(f"multiplier too large (at most {MAX_MULTIPLIER_PPM // PPM_ONE}): "
                         f"{text!r}")
    return ppm
