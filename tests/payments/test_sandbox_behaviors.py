"""The test card table and the scripted outcomes, without a database."""

from __future__ import annotations

import pytest

from faregate.payments.processor import PaymentError
from faregate.payments.sandbox.behaviors import (
    BEHAVIORS,
    TEST_CARDS,
    after_authentication,
    attempt,
    card_for,
    verification,
)
from faregate.payments.sandbox.cards import luhn_ok

# The numbers the brief and docs.stripe.com/testing list, with their behaviour.
EXPECTED = {
    "4242424242424242": "succeed", "5555555555554444": "succeed",
    "2223003122003222": "succeed", "5200828282828210": "succeed",
    "5105105105105100": "succeed", "378282246310005": "succeed", "371449635398431": "succeed",
    "6011111111111117": "succeed", "6200000000000005": "succeed", "6200000000000047": "succeed",
    "6205500000000000004": "succeed", "3566002020360505": "succeed",
    "3056930009020004": "succeed", "36227206271667": "succeed",
    "4000000000000002": "generic_decline", "4000000000009995": "insufficient_funds",
    "4000000000009987": "lost_card", "4000000000009979": "stolen_card",
    "4000000000000069": "expired_card", "4000000000000127": "incorrect_cvc",
    "4000000000000119": "processing_error", "4000000000006975": "card_velocity_exceeded",
    "4000002500003155": "auth_unless_setup", "4000002760003184": "auth_always",
    "4000000000000341": "charge_customer_fail",
}


def test_the_listed_numbers_have_their_behaviour() -> None:
    for number, name in EXPECTED.items():
        assert card_for(number).behavior.name == name, number
    assert all(luhn_ok(n) for n in TEST_CARDS)
    assert all(card.behavior.name in BEHAVIORS for card in TEST_CARDS.values())


@pytest.mark.parametrize("number", ["4111111111111111", "5500005555555559", "4242424242424241",
                                    "371449635398432"])
def test_a_real_card_is_refused_in_test_mode(number: str) -> None:
    with pytest.raises(PaymentError) as info:
        card_for(number)
    err = info.value
    assert (err.code, err.decline_code) == ("card_declined", "test_mode_live_card")
    assert err.message.startswith("Your card was declined. Your request was in test mode, but "
                                  "used a non test card.")
    assert number not in err.message


@pytest.mark.parametrize(("name", "code", "decline_code"), [
    ("generic_decline", "card_declined", "generic_decline"),
    ("insufficient_funds", "card_declined", "insufficient_funds"),
    ("lost_card", "card_declined", "lost_card"),
    ("stolen_card", "card_declined", "stolen_card"),
    ("card_velocity_exceeded", "card_declined", "card_velocity_exceeded"),
    ("expired_card", "expired_card", None),
    ("incorrect_cvc", "incorrect_cvc", None),
    ("processing_error", "processing_error", None),
])
def test_issuer_declines(name: str, code: str, decline_code: str | None) -> None:
    behavior = BEHAVIORS[name]
    assert behavior.attach_declined and behavior.decline is not None
    assert (behavior.decline.code, behavior.decline.decline_code) == (code, decline_code)
    for off in (False, True):
        for set_up in (False, True):
            out = attempt(behavior, off_session=off, set_up=set_up)
            assert out.decline == behavior.decline and not out.needs_auth
    assert behavior.decline.error().retryable is (code == "processing_error")


# (behaviour, set_up) -> (on-session, off-session, verification) as "ok" | "auth" | reason
MATRIX = {
    ("succeed", False): ("ok", "ok", "ok"),
    # binds (its card check passes), then every charge fails
    ("charge_customer_fail", False): ("generic_decline", "generic_decline", "ok"),
    ("auth_unless_setup", False): ("auth", "authentication_required", "auth"),
    ("auth_unless_setup", True): ("auth", "ok", "ok"),
    ("auth_always", False): ("auth", "authentication_required", "auth"),
    ("auth_always", True): ("auth", "authentication_required", "auth"),
    ("auth_setup_off_session", False): ("auth", "ok", "ok"),
    ("auth_insufficient_funds", False): ("auth", "insufficient_funds", "auth"),
    ("auth_insufficient_funds", True): ("auth", "insufficient_funds", "auth"),
}


@pytest.mark.parametrize(("key", "expected"), list(MATRIX.items()))
def test_outcome_matrix(key: tuple[str, bool], expected: tuple[str, str, str]) -> None:
    name, set_up = key
    behavior = BEHAVIORS[name]

    def show(out: object) -> str:
        assert hasattr(out, "needs_auth") and hasattr(out, "decline")
        if out.needs_auth:
            assert out.decline is None
            return "auth"
        return out.decline.reason if out.decline else "ok"

    got = (show(attempt(behavior, off_session=False, set_up=set_up)),
           show(attempt(behavior, off_session=True, set_up=set_up)),
           show(verification(behavior, set_up=set_up)))
    assert got == expected


def test_after_authentication() -> None:
    assert after_authentication(BEHAVIORS["auth_always"], authenticated=True).decline is None
    declined = after_authentication(BEHAVIORS["auth_insufficient_funds"],
                                    authenticated=True).decline
    assert declined is not None and declined.reason == "insufficient_funds"
    failed = after_authentication(BEHAVIORS["auth_always"], authenticated=False).decline
    assert failed is not None and failed.code == "payment_intent_authentication_failure"
