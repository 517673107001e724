from __future__ import annotations

import pytest
from phonenumbers import PhoneNumberType

from faregate.phone.numbers import PhoneNumberRejected, PhonePolicy, mask_phone, parse_phone

POLICY = PhonePolicy()


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+86 138 0013 8000", "+8613800138000"),  # China mobile
        ("+44 7400 123456", "+447400123456"),  # UK mobile
        ("+1 650 253 0000", "+16502530000"),  # US: FIXED_LINE_OR_MOBILE
        ("+1 (416) 555-0123", "+14165550123"),  # Canada: FIXED_LINE_OR_MOBILE
        ("  +49 1512 3456789 ", "+4915123456789"),  # Germany mobile, whitespace
    ],
)
def test_mobiles_are_accepted(raw: str, e164: str) -> None:
    assert parse_phone(raw) == e164
    POLICY.check(e164)
    assert POLICY.accept(raw) == e164


@pytest.mark.parametrize(
    ("e164", "reason", "words"),
    [
        ("+442079460018", "landline", "Landlines can't receive SMS codes"),
        ("+449098790000", "premium_rate", "Premium-rate"),
        ("+19005550100", "premium_rate", "Premium-rate"),
        ("+448001234567", "toll_free", "Toll-free"),
        ("+445612345678", "voip", "VoIP"),
        ("+447012345678", "personal_number", "Personal"),
    ],
)
def test_other_types_are_refused_with_their_own_message(e164: str, reason: str, words: str) -> None:
    with pytest.raises(PhoneNumberRejected) as info:
        POLICY.check(e164)
    assert info.value.reason == reason
    assert words in str(info.value)


def test_messages_differ_per_refused_type() -> None:
    messages = set()
    for e164 in ("+442079460018", "+449098790000", "+448001234567", "+445612345678"):
        with pytest.raises(PhoneNumberRejected) as info:
            POLICY.check(e164)
        messages.add(str(info.value))
    assert len(messages) == 4


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [
        ("+44 7700 90", None, "invalid_number"),
        ("+1 555 0100", None, "invalid_number"),
        ("+86 138 0013 8000 99", None, "invalid_number"),
        ("hello", None, "not_a_number"),
        ("", None, "empty"),
        ("020 7946 0018", None, "invalid_country_code"),  # national form without a region
        ("+999 1234 5678", None, "invalid_country_code"),
        ("+1" + "2" * 80, None, "too_long"),
    ],
)
def test_invalid_numbers_are_rejected(raw: str, region: str | None, reason: str) -> None:
    with pytest.raises(PhoneNumberRejected) as info:
        parse_phone(raw, region)
    assert info.value.reason == reason
    assert isinstance(info.value, ValueError)


def test_national_format_with_region() -> None:
    assert parse_phone("020 7946 0018", "GB") == "+442079460018"
    assert parse_phone("07400 123456", "gb") == "+447400123456"
    assert parse_phone("138 0013 8000", "CN") == "+8613800138000"
    # An international number ignores the region.
    assert parse_phone("+1 650 253 0000", "GB") == "+16502530000"
    with pytest.raises(PhoneNumberRejected) as info:
        POLICY.accept("020 7946 0018", "GB")
    assert info.value.reason == "landline"


def test_check_requires_e164() -> None:
    with pytest.raises(PhoneNumberRejected) as info:
        POLICY.check("07400 123456")
    assert info.value.reason == "not_e164"


def test_country_lists() -> None:
    only_gb = PhonePolicy(allowed_countries=frozenset({"gb"}))
    only_gb.check("+447400123456")
    with pytest.raises(PhoneNumberRejected) as info:
        only_gb.check("+8613800138000")
    assert info.value.reason == "country_not_allowed"

    no_cn = PhonePolicy(blocked_countries=frozenset({"CN"}))
    no_cn.check("+447400123456")
    with pytest.raises(PhoneNumberRejected) as info:
        no_cn.check("+8613800138000")
    assert info.value.reason == "country_not_allowed"

    # +1 is shared: the region is the number's, not the calling code's.
    with pytest.raises(PhoneNumberRejected):
        PhonePolicy(allowed_countries=frozenset({"US"})).check("+14165550123")


def test_allowed_types_are_configurable() -> None:
    landlines_too = PhonePolicy(
        allowed_types=frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE})
    )
    landlines_too.check("+442079460018")
    with pytest.raises(PhoneNumberRejected):
        landlines_too.check("+16502530000")  # FIXED_LINE_OR_MOBILE no longer listed


def test_mask_phone() -> None:
    assert mask_phone("+8613812345678") == "+86138****5678"
    assert mask_phone("+16502530000") == "+165****0000"
    for e164 in ("+8613812345678", "+16502530000", "+3541234567", "+12345"):
        masked = mask_phone(e164)
        assert len(masked) == len(e164)
        assert masked.count("*") >= 3
