"""Stripe's published test card numbers and what each one does. Only these numbers are
accepted (Stripe refuses a real card in test mode); a tokenized method keeps the behaviour's
name, never the number.

Behaviour names (stored in `sandbox_payment_methods.behavior`):
  succeed                  every attempt succeeds
  generic_decline, insufficient_funds, lost_card, stolen_card, card_velocity_exceeded,
  expired_card, incorrect_cvc, processing_error
                           the issuer declines: attaching and every attempt fail
  charge_customer_fail     attaching and the card check (verification) succeed, as Stripe's
                           setup of this card does; every charge fails (generic_decline)
  auth_unless_setup        on-session attempts need authentication; off-session attempts
                           need it until a verification of the card has succeeded
  auth_setup_off_session   as if already set up: off-session succeeds, on-session needs it
  auth_always              every attempt needs authentication
  auth_insufficient_funds  needs authentication on-session, then declines insufficient_funds
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from faregate.payments.processor import PaymentError

AuthRule = Literal["none", "unless_setup", "setup_off_session", "always"]


@dataclass(frozen=True, slots=True)
class Decline:
    """A card error as Stripe reports it: `code`, and `decline_code` for issuer declines."""

    code: str
    decline_code: str | None
    message: str

    @property
    def reason(self) -> str:
        """The one failure code a Charge carries (decline code, else the error code)."""
        return self.decline_code or self.code

    def error(self) -> PaymentError:
        return PaymentError(self.message, code=self.code, decline_code=self.decline_code,
                            retryable=self.code == "processing_error")


@dataclass(frozen=True, slots=True)
class Behavior:
    name: str
    decline: Decline | None = None  # every attempt (after authentication, if any) fails so
    attach_declined: bool = False  # attaching fails with `decline` (issuer-decline cards)
    auth: AuthRule = "none"


@dataclass(frozen=True, slots=True)
class ScriptedCard:
    behavior: Behavior
    country: str = "US"


DECLINED = "Your card was declined."
GENERIC = Decline("card_declined", "generic_decline", DECLINED)
INSUFFICIENT_FUNDS = Decline("card_declined", "insufficient_funds",
                             "Your card has insufficient funds.")
AUTHENTICATION_REQUIRED = Decline("authentication_required", "authentication_required",
                                  "Your card was declined. This transaction requires "
                                  "authentication.")
AUTHENTICATION_FAILED = Decline(
    "payment_intent_authentication_failure", None,
    "The provided PaymentMethod has failed authentication. You can provide a new "
    "PaymentMethod to attempt to fulfill this PaymentIntent again.")
LIVE_CARD = Decline("card_declined", "test_mode_live_card",
                    "Your card was declined. Your request was in test mode, but used a non test "
                    "card. For a list of valid test cards, visit: https://docs.stripe.com/testing.")


def _issuer_decline(name: str, decline: Decline) -> Behavior:
    return Behavior(name, decline=decline, attach_declined=True)


SUCCEED = Behavior("succeed")
BEHAVIORS: dict[str, Behavior] = {b.name: b for b in (
    SUCCEED,
    _issuer_decline("generic_decline", GENERIC),
    _issuer_decline("insufficient_funds", INSUFFICIENT_FUNDS),
    _issuer_decline("lost_card", Decline("card_declined", "lost_card", DECLINED)),
    _issuer_decline("stolen_card", Decline("card_declined", "stolen_card", DECLINED)),
    _issuer_decline("card_velocity_exceeded", Decline(
        "card_declined", "card_velocity_exceeded",
        "Your card was declined for making repeated attempts too frequently or exceeding its "
        "amount limit.")),
    _issuer_decline("expired_card", Decline("expired_card", None, "Your card has expired.")),
    _issuer_decline("incorrect_cvc", Decline("incorrect_cvc", None,
                                             "Your card's security code is incorrect.")),
    _issuer_decline("processing_error", Decline(
        "processing_error", None,
        "An error occurred while processing your card. Try again in a little bit.")),
    Behavior("charge_customer_fail", decline=GENERIC),
    Behavior("auth_unless_setup", auth="unless_setup"),
    Behavior("auth_setup_off_session", auth="setup_off_session"),
    Behavior("auth_always", auth="always"),
    Behavior("auth_insufficient_funds", decline=INSUFFICIENT_FUNDS, auth="always"),
)}


def _card(behavior: str, country: str = "US") -> ScriptedCard:
    return ScriptedCard(BEHAVIORS[behavior], country)


# docs.stripe.com/testing, as quoted in reference/openai-stripe-contracts.md section 6.1.
TEST_CARDS: dict[str, ScriptedCard] = {
    # Successful payments, by brand.
    "4242424242424242": _card("succeed"),
    "4000056655665556": _card("succeed"),
    "5555555555554444": _card("succeed"),
    "2223003122003222": _card("succeed"),
    "5200828282828210": _card("succeed"),
    "5105105105105100": _card("succeed"),
    "378282246310005": _card("succeed"),
    "371449635398431": _card("succeed"),
    "6011111111111117": _card("succeed"),
    "6011000990139424": _card("succeed"),
    "6011981111111113": _card("succeed"),
    "3056930009020004": _card("succeed"),
    "36227206271667": _card("succeed"),
    "6555900000604105": _card("succeed", "KR"),
    "3566002020360505": _card("succeed", "JP"),
    "6200000000000005": _card("succeed", "CN"),
    "6200000000000047": _card("succeed", "CN"),
    "6205500000000000004": _card("succeed", "CN"),
    # 3D Secure supported but not required, or frictionless: no challenge.
    "4000000000003055": _card("succeed"),
    "4000000032200000": _card("succeed"),
    # Declines.
    "4000000000000002": _card("generic_decline"),
    "4000000000009995": _card("insufficient_funds"),
    "4000000000009987": _card("lost_card"),
    "4000000000009979": _card("stolen_card"),
    "4000000000000069": _card("expired_card"),
    "4000000000000127": _card("incorrect_cvc"),
    "4000000000000119": _card("processing_error"),
    "4000000000006975": _card("card_velocity_exceeded"),
    "4000000000000341": _card("charge_customer_fail"),
    # Authentication and setup.
    "4000002500003155": _card("auth_unless_setup"),
    "4000002760003184": _card("auth_always"),
    "4000003800000446": _card("auth_setup_off_session"),
    "4000008260003178": _card("auth_insufficient_funds"),
    "4000000000003220": _card("auth_always", "IE"),
    "4000008400000027": _card("auth_always"),
}


def card_for(number: str) -> ScriptedCard:
    """The scripted card for `number`, or Stripe's test-mode refusal of a real card."""
    card = TEST_CARDS.get(number)
    if card is None:
        raise LIVE_CARD.error()
    return card


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one payment attempt does: succeed, fail with `decline`, or wait for the customer
    to authenticate (`needs_auth`; off-session that is itself a failure)."""

    decline: Decline | None = None
    needs_auth: bool = False


def attempt(behavior: Behavior, *, off_session: bool, set_up: bool) -> Outcome:
    """One charge of a card with `behavior`. `set_up`: a verification of this method has
    succeeded before (Stripe's "set up for future payments")."""
    needs_auth = {
        "none": False,
        "unless_setup": not off_session or not set_up,
        "setup_off_session": not off_session,
        "always": True,
    }[behavior.auth]
    if needs_auth and off_session:
        # The customer is not there to authenticate. Stripe reports authentication_required,
        # except for a card that declines anyway (3178: insufficient_funds).
        return Outcome(decline=behavior.decline or AUTHENTICATION_REQUIRED)
    return Outcome(decline=None if needs_auth else behavior.decline, needs_auth=needs_auth)


def verification(behavior: Behavior, *, set_up: bool) -> Outcome:
    """A verification: the on-session setup of a card for later off-session charges. It is
    challenged unless the card is set up already (or scripted as such, 0446)."""
    needs_auth = {
        "none": False,
        "unless_setup": not set_up,
        "setup_off_session": False,
        "always": True,
    }[behavior.auth]
    if behavior.name == "charge_customer_fail":  # binds fine, fails when charged
        return Outcome(decline=None, needs_auth=False)
    return Outcome(decline=None if needs_auth else behavior.decline, needs_auth=needs_auth)


def after_authentication(behavior: Behavior, *, authenticated: bool) -> Outcome:
    """The attempt once the customer completed (or failed) the authentication."""
    if not authenticated:
        return Outcome(decline=AUTHENTICATION_FAILED)
    return Outcome(decline=behavior.decline)
