"""Card data checks: Luhn, brand by prefix, length by brand, expiry, CVC, postal code, and the
fingerprint. Pure functions, no database."""

from __future__ import annotations

import datetime as dt

import pytest

from faregate.payments.processor import PaymentError
from faregate.payments.sandbox.behaviors import TEST_CARDS
from faregate.payments.sandbox.cards import (
    brand_of,
    fingerprint,
    luhn_ok,
    validate_card,
)

TODAY = dt.date(2026, 3, 15)


def refusal(number: str = "4242424242424242", exp_month: object = 12,
            exp_year: object = 2034, cvc: str = "123", postal: str | None = "94107",
            today: dt.date = TODAY) -> PaymentError:
    with pytest.raises(PaymentError) as info:
        validate_card(number, exp_month, exp_year, cvc, postal, today=today)
    return info.value


@pytest.mark.parametrize(("number", "ok"), [
    ("4242424242424242", True), ("4242424242424241", False), ("378282246310005", True),
    ("6205500000000000004", True), ("36227206271667", True), ("0", True), ("1", False),
    ("79927398713", True), ("79927398710", False), ("4242 4242", False), ("", True),
])
def test_luhn(number: str, ok: bool) -> None:
    assert luhn_ok(number) is (ok and number.isdigit())


@pytest.mark.parametrize(("number", "brand"), [
    ("4242424242424242", "visa"), ("4000056655665556", "visa"),
    ("5555555555554444", "mastercard"), ("5105105105105100", "mastercard"),
    ("2223003122003222", "mastercard"), ("2221000000000009", "mastercard"),
    ("2720990000000000", "mastercard"), ("2721000000000000", "unknown"),
    ("2220990000000000", "unknown"), ("5000000000000000", "unknown"),
    ("5600000000000000", "unknown"),
    ("378282246310005", "amex"), ("341111111111111", "amex"),
    ("6011111111111117", "discover"), ("6441000000000000", "discover"),
    ("6491000000000000", "discover"), ("6431000000000000", "unknown"),
    ("6555900000604105", "discover"), ("6012000000000000", "unknown"),
    ("3056930009020004", "diners"), ("36227206271667", "diners"),
    ("30000000000004", "diners"), ("30600000000000", "unknown"),
    ("30950000000000", "diners"), ("38000000000000", "diners"), ("39000000000000", "diners"),
    ("3566002020360505", "jcb"), ("3528000000000000", "jcb"), ("3589000000000000", "jcb"),
    ("3527000000000000", "unknown"), ("3590000000000000", "unknown"),
    ("6200000000000005", "unionpay"), ("6205500000000000004", "unionpay"),
    ("1234567890123452", "unknown"),
])
def test_brand_by_prefix(number: str, brand: str) -> None:
    assert brand_of(number) == brand


def test_every_published_test_card_is_valid_card_data() -> None:
    for number in TEST_CARDS:
        cvc = "1234" if brand_of(number) == "amex" else "123"
        card = validate_card(number, 12, 2034, cvc, "94107", today=TODAY)
        assert card.number == number and card.last4 == number[-4:]
        assert card.brand != "unknown"


def test_spaces_are_ignored_and_the_brand_reported() -> None:
    card = validate_card("4242 4242 4242 4242", "12", "34", "123", " 94107 ", today=TODAY)
    assert (card.brand, card.last4, card.exp_month, card.exp_year, card.postal_code) == \
        ("visa", "4242", 12, 2034, "94107")
    assert "4242424242424242" not in repr(card) and "123" not in repr(card)


@pytest.mark.parametrize(("number", "code"), [
    ("4242424242424241", "incorrect_number"),  # Stripe's Luhn failure
    ("4242-4242-4242-4243", "incorrect_number"),
    ("424242424242424", "invalid_number"),  # visa, 15 digits
    ("42424242424242424242", "invalid_number"),  # 20 digits
    ("4242abcd42424242", "invalid_number"),
    ("", "invalid_number"),
    ("37828224631000", "invalid_number"),  # amex, 14 digits
    ("3782822463100005", "invalid_number"),  # amex, 16 digits
    ("555555555555444", "invalid_number"),  # mastercard, 15 digits
    ("3622720627166", "invalid_number"),  # diners 36, 13 digits
    ("٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢", "invalid_number"),  # non-ASCII digits
])
def test_number_refusals(number: str, code: str) -> None:
    err = refusal(number)
    assert (err.code, err.param) == (code, "number")


@pytest.mark.parametrize("month", [0, 13, "13", "x", "", -1, True, None])
def test_invalid_expiry_month(month: object) -> None:
    err = refusal(exp_month=month)
    assert (err.code, err.param) == ("invalid_expiry_month", "exp_month")


@pytest.mark.parametrize("year", [95, 1995, 2025, 2077, "20x6", "", None])
def test_invalid_expiry_year(year: object) -> None:
    err = refusal(exp_year=year)
    assert (err.code, err.param) == ("invalid_expiry_year", "exp_year")


def test_expiry_this_month_is_valid_last_month_expired() -> None:
    assert validate_card("4242424242424242", 3, 2026, "123", "1", today=TODAY).exp_month == 3
    # A card is good to the end of its month, including its last day.
    assert validate_card("4242424242424242", 3, 26, "123", "1",
                         today=dt.date(2026, 3, 31)).exp_year == 2026
    err = refusal(exp_month=2, exp_year=2026)
    assert (err.code, err.param) == ("expired_card", "exp_month")
    assert refusal(exp_month=3, exp_year=2026, today=dt.date(2026, 4, 1)).code == "expired_card"
    # In January, last month is December of last year: a past year.
    assert refusal(exp_month=12, exp_year=2025, today=dt.date(2026, 1, 1)).code == \
        "invalid_expiry_year"
    assert validate_card("4242424242424242", 1, 2026, "123", "1",
                         today=dt.date(2026, 1, 31)).exp_month == 1


def test_expiry_against_the_real_clock() -> None:
    today = dt.datetime.now(dt.UTC).date()
    assert validate_card("4242424242424242", today.month, today.year, "123", "1").exp_year == \
        today.year
    last = today.replace(day=1) - dt.timedelta(days=1)
    with pytest.raises(PaymentError) as info:
        validate_card("4242424242424242", last.month, last.year, "123", "1")
    assert info.value.code in ("expired_card", "invalid_expiry_year")


@pytest.mark.parametrize(("number", "cvc", "ok"), [
    ("378282246310005", "1234", True), ("378282246310005", "123", False),
    ("371449635398431", "12345", False), ("4242424242424242", "123", True),
    ("4242424242424242", "1234", False), ("4242424242424242", "99", False),
    ("5555555555554444", "12a", False), ("3566002020360505", "", False),
    ("36227206271667", "000", True),
])
def test_cvc_length_by_brand(number: str, cvc: str, ok: bool) -> None:
    if ok:
        assert validate_card(number, 12, 2034, cvc, "1", today=TODAY).cvc == cvc
    else:
        err = refusal(number, cvc=cvc)
        assert (err.code, err.param) == ("invalid_cvc", "cvc")


@pytest.mark.parametrize("postal", [None, "", "   ", "1" * 21])
def test_postal_code_required(postal: str | None) -> None:
    err = refusal(postal=postal)
    assert (err.code, err.param) == ("incomplete_zip", "billing_details[address][postal_code]")
    assert validate_card("4242424242424242", 12, 2034, "123", "1" * 20, today=TODAY)


def test_checks_come_in_stripes_order() -> None:
    assert refusal("4242424242424241", exp_month=13, cvc="1", postal="").code == \
        "incorrect_number"
    assert refusal(exp_month=13, exp_year=1, cvc="1", postal="").code == "invalid_expiry_month"
    assert refusal(exp_year=1, cvc="1", postal="").code == "invalid_expiry_year"
    assert refusal(cvc="1", postal="").code == "invalid_cvc"


def test_messages_never_repeat_the_input() -> None:
    cases = [refusal("4242424242424241"), refusal("4242abcd42424242"), refusal(cvc="98"),
             refusal(exp_month=77), refusal(exp_year=1999), refusal(postal="x" * 30)]
    for err in cases:
        for value in ("4242424242424241", "4242abcd", "98", "77", "1999", "xxxxx"):
            assert value not in err.message


def test_fingerprint_is_stable_keyed_and_not_the_number() -> None:
    a = fingerprint("4242424242424242", b"k1")
    assert a == fingerprint("4242424242424242", b"k1")
    assert a != fingerprint("4000056655665556", b"k1")
    assert a != fingerprint("4242424242424242", b"k2")
    assert "424242424242" not in a
    assert len(a) == 32
