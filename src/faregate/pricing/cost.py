"""A request's cost, its reservation bound, and how far a reservation stretches.

Prices are integer nano-USD per 1M tokens; cost = ceil(Σ tokens × price / 10^6), rounded once
per request."""

from __future__ import annotations

from dataclasses import dataclass

from faregate.kit.money import TOKENS_PER_PRICE_UNIT, cost_nano


@dataclass(frozen=True, slots=True)
class Price:
    input_nano_per_1m: int
    cached_input_nano_per_1m: int
    output_nano_per_1m: int


def cost(price: Price, prompt_tokens: int, cached_tokens: int, completion_tokens: int) -> int:
    cached = min(max(cached_tokens, 0), max(prompt_tokens, 0))
    uncached = max(prompt_tokens, 0) - cached
    return cost_nano(uncached * price.input_nano_per_1m + cached * price.cached_input_nano_per_1m
                     + max(completion_tokens, 0) * price.output_nano_per_1m)


def output_bound(max_tokens: int, n: int, margin_pct: int) -> int:
    """Output tokens to reserve for: the limit times the choices, plus the overshoot margin."""
    total = max_tokens * n
    return total + -(-total * margin_pct // 100)


def reservation(price: Price, prompt_bound: int, max_tokens: int, n: int,
                margin_pct: int) -> tuple[int, int]:
    """(want, need): the worst case, and the least that still lets the request run
    (the prompt plus one output token)."""
    want = cost(price, prompt_bound, 0, output_bound(max_tokens, n, margin_pct))
    need = cost(price, prompt_bound, 0, 1)
    return want, need


def max_tokens_within(price: Price, reserved_nano: int, prompt_bound: int, n: int,
                      margin_pct: int, ceiling: int) -> int:
    """The largest per-choice output limit whose worst case fits in `reserved_nano`."""
    if price.output_nano_per_1m == 0:
        return ceiling
    budget = reserved_nano * TOKENS_PER_PRICE_UNIT - prompt_bound * price.input_nano_per_1m
    if budget <= 0:
        return 0
    total_tokens = budget // price.output_nano_per_1m
    per_choice = total_tokens * 100 // ((100 + margin_pct) * n)
    while per_choice > 0 and cost(
            price, prompt_bound, 0, output_bound(per_choice, n, margin_pct)) > reserved_nano:
        per_choice -= 1
    return min(per_choice, ceiling)
