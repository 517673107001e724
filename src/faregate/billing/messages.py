"""Readable messages for processor outcomes (the dashboard translates by `code`)."""

from __future__ import annotations

DECLINES: dict[str, str] = {
    "insufficient_funds": "Your card has insufficient funds.",
    "generic_decline": "Your card was declined.",
    "card_declined": "Your card was declined.",
    "lost_card": "Your card was declined.",
    "stolen_card": "Your card was declined.",
    "expired_card": "Your card has expired.",
    "incorrect_cvc": "Your card's security code is incorrect.",
    "invalid_cvc": "Your card's security code is invalid.",
    "incorrect_number": "Your card number is incorrect.",
    "invalid_number": "Your card number is invalid.",
    "processing_error": "An error occurred while processing your card. Try again in a little "
                        "bit.",
    "card_velocity_exceeded": "Your card was declined for making repeated attempts too "
                              "frequently or exceeding its amount limit.",
    "authentication_required": "Your bank asks you to confirm this payment. Pay on the "
                               "billing page to authenticate.",
    "do_not_honor": "Your card was declined.",
    "test_mode_live_card": "Your card was declined: payments are simulated here, and only "
                           "test cards work.",
}


def decline_message(code: str | None, fallback: str | None = None) -> str:
    if code and code in DECLINES:
        return DECLINES[code]
    return fallback or "Your card was declined."
