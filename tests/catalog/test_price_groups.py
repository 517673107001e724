"""The price-group arithmetic: exact integer multiples, rounded up once per component."""

from __future__ import annotations

import pytest

from faregate.pricing.cost import Price
from faregate.pricing.groups import (
    PPM_ONE,
    group_price,
    multiplied,
    multiplier_ppm,
    ppm_to_text,
    text_to_ppm,
)

LIST = Price(500_000_000, 250_000_000, 1_500_000_000)


def test_x1_is_the_list_price_itself() -> None:
    assert multiplied(LIST, PPM_ONE) is LIST


def test_multiples_are_exact_and_round_up_per_component() -> None:
    assert multiplied(LIST, 1_500_000) == Price(750_000_000, 375_000_000, 2_250_000_000)
    assert multiplied(LIST, 0) == Price(0, 0, 0)
    # 7 × 1/3 is 2.33…: rounded up to 3, never down.
    assert multiplied(Price(7, 7, 7), 333_333) == Price(3, 3, 3)
    assert multiplied(Price(1, 0, 3), 1) == Price(1, 0, 1)
    with pytest.raises(ValueError, match="negative"):
        multiplied(LIST, -1)


def test_the_models_own_multiplier_wins_then_the_groups_then_x1() -> None:
    groups = {"default": PPM_ONE, "resellers": 800_000}
    own = {("big", "resellers"): 900_000}
    assert multiplier_ppm("big", "resellers", groups, own) == 900_000
    assert multiplier_ppm("small", "resellers", groups, own) == 800_000
    assert multiplier_ppm("small", "unknown", groups, own) == PPM_ONE
    assert group_price(LIST, "small", "resellers", groups, own) == \
        Price(400_000_000, 200_000_000, 1_200_000_000)
    assert group_price(LIST, "big", "resellers", groups, own) == \
        Price(450_000_000, 225_000_000, 1_350_000_000)


@pytest.mark.parametrize(("text", "ppm"), [
    ("1", 1_000_000), ("1.5", 1_500_000), ("0.8", 800_000), ("0", 0), (".25", 250_000),
    ("0.000001", 1), (" 2.000000 ", 2_000_000), ("1000", 1_000_000_000)])
def test_multipliers_parse_exactly(text: str, ppm: int) -> None:
    assert text_to_ppm(text) == ppm


@pytest.mark.parametrize("text", ["", ".", "-1", "1.0000001", "abc", "1e3", "1000.000001",
                                  "1.2.3", "nan"])
def test_malformed_multipliers_are_refused(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies with the mistake
        text_to_ppm(text)


def test_multipliers_print_exactly() -> None:
    assert [ppm_to_text(p) for p in (1_000_000, 1_500_000, 800_000, 1, 0)] == \
        ["1", "1.5", "0.8", "0.000001", "0"]
