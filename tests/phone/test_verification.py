"""Phone verification by SMS code, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from faregate.audit.trail import list_events
from faregate.db.schema import phone_codes, users
from faregate.errors import InvalidRequest, RateLimited
from faregate.identity.users import create_user
from faregate.kit.crypto import keyed_hash
from faregate.phone.codes import code_hmac, ip_key, normalize_code
from faregate.phone.numbers import PhoneNumberRejected, policy_from_names
from faregate.phone.verification import (
    CheckOutcome,
    CheckStatus,
    CodeSent,
    PhoneRules,
    check_code,
    phone_status,
    prune_codes,
    raise_for,
    sms_text,
    start_verification,
)

PEPPER = b"pepper-for-tests-0123456789abcdef"
T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
CN_MOBILE = "+86 138 0013 8000"
CN_E164 = "+8613800138000"
IP = "203.0.113.5"
RULES = PhoneRules()



def new_user(engine: Engine, email: str = "p@example.com") -> str:
    with engine.begin() as conn:
        return create_user(conn, email).id


def start(engine: Engine, user_id: str, raw: str = CN_MOBILE, *, region: str | None = None,
          ip: str | None = IP, rules: PhoneRules = RULES, now: dt.datetime = T0) -> CodeSent:
    with engine.begin() as conn:
        return start_verification(conn, user_id=user_id, raw_number=raw, region=region, ip=ip,
                                  rules=rules, pepper=PEPPER, now=now)


def check(engine: Engine, user_id: str, code: str, *, rules: PhoneRules = RULES,
          now: dt.datetime = T0, ip: str | None = IP) -> CheckOutcome:
    with engine.begin() as conn:
        return check_code(conn, user_id=user_id, code=code, rules=rules, pepper=PEPPER, ip=ip,
                          now=now)


def user_phone(engine: Engine, user_id: str) -> tuple[str | None, str | None, dt.datetime | None]:
    with engine.connect() as conn:
        row = conn.execute(sa.select(users.c.phone_hash, users.c.phone_masked,
                                     users.c.phone_verified_at)
                           .where(users.c.id == user_id)).one()
    return row.phone_hash, row.phone_masked, row.phone_verified_at


def code_row(engine: Engine, code_id: str) -> sa.Row[*tuple[object, ...]]:
    with engine.connect() as conn:
        return conn.execute(sa.select(phone_codes).where(phone_codes.c.id == code_id)).one()


def wrong(code: str) -> str:
    """Another valid-looking code."""
    return f"{(int(code) + 1) % 10**6:06d}"


def later(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def mobile(i: int) -> str:
    return f"+86 138 0013 {8000 + i}"


# --- the whole way ------------------------------------------------------------------------------

def test_happy_path_stores_only_an_hmac_and_verifies(engine: Engine) -> None:
    uid = new_user(engine)
    sent = start(engine, uid)
    assert sent.e164 == CN_E164 and sent.masked == "+86138****8000"
    assert len(sent.code) == 6 and sent.code.isdigit()
    assert sent.expires_at == later(600) and sent.resend_at == later(60)
    assert sent.code not in repr(sent) and CN_E164 not in repr(sent)

    row = code_row(engine, sent.code_id)
    # Every column accounted for: the code is kept only as an HMAC bound to the row id.
    assert dict(row._mapping) == {
        "id": sent.code_id, "user_id": uid,
        "phone_hash": keyed_hash(PEPPER, CN_E164, purpose="phone"),
        "phone_masked": "+86138****8000",
        "code_hmac": keyed_hash(PEPPER, f"{sent.code_id}:{sent.code}", purpose="phone_code"),
        "ip": IP, "created_at": T0, "expires_at": later(600), "attempts": 0,
        "verified_at": None, "superseded_at": None,
    }
    assert sent.code not in {str(value) for value in row}
    assert all("13800138000" not in str(value) for value in row)
    assert user_phone(engine, uid) == (None, None, None)

    outcome = check(engine, uid, sent.code, now=later(30))
    assert outcome == CheckOutcome(CheckStatus.VERIFIED, masked=sent.masked)
    raise_for(outcome)  # no error
    assert user_phone(engine, uid) == (row.phone_hash, sent.masked, later(30))
    assert code_row(engine, sent.code_id).verified_at == later(30)
    with engine.connect() as conn:
        events = list_events(conn, action="phone.verified")
        status = phone_status(conn, uid, rules=RULES, now=later(31))
    assert [(e.actor, e.target, e.ip) for e in events] == [(f"user:{uid}", sent.masked, IP)]
    assert events[0].detail is None
    assert status.verified and status.masked == sent.masked and status.verified_at == later(30)
    assert status.pending is None

    # The code is used up.
    assert check(engine, uid, sent.code, now=later(40)).status is CheckStatus.NO_CODE


def test_sms_text_carries_the_code_and_the_expiry() -> None:
    assert sms_text("123456") == (
        "Your Faregate verification code is 123456. It expires in 10 minutes.")
    assert sms_text("000042", ttl_s=60).endswith("It expires in 1 minute.")


def test_code_hmac_is_bound_to_its_row() -> None:
    assert code_hmac(PEPPER, "pcode_a", "123456") != code_hmac(PEPPER, "pcode_b", "123456")
    assert code_hmac(PEPPER, "pcode_a", "123456") != code_hmac(b"other", "pcode_a", "123456")


# --- wrong, malformed and expired codes ---------------------------------------------------------

def test_five_wrong_codes_kill_the_code(engine: Engine) -> None:
    uid = new_user(engine)
    sent = start(engine, uid)
    for left in (4, 3, 2, 1):
        outcome = check(engine, uid, wrong(sent.code))
        assert outcome.status is CheckStatus.WRONG and outcome.attempts_left == left
    with pytest.raises(InvalidRequest) as info:
        raise_for(outcome)
    assert info.value.code == "phone_code_invalid" and info.value.param == "code"
    assert info.value.message == "That code is not right. 1 attempt left."

    assert check(engine, uid, wrong(sent.code)).status is CheckStatus.TOO_MANY_ATTEMPTS
    assert code_row(engine, sent.code_id).attempts == 5
    outcome = check(engine, uid, sent.code)  # even the right one
    assert outcome.status is CheckStatus.TOO_MANY_ATTEMPTS
    assert code_row(engine, sent.code_id).attempts == 5
    assert user_phone(engine, uid) == (None, None, None)
    with pytest.raises(InvalidRequest) as info:
        raise_for(outcome)
    assert info.value.status == 400 and info.value.code == "phone_code_attempts_exceeded"
    assert info.value.message == "Too many wrong codes. Request a new code."

    # A new code (after the cooldown) starts over.
    fresh = start(engine, uid, now=later(60))
    assert check(engine, uid, fresh.code, now=later(61)).verified


def test_wrong_message_counts_attempts_left(engine: Engine) -> None:
    uid = new_user(engine)
    sent = start(engine, uid)
    with pytest.raises(InvalidRequest) as info:
        raise_for(check(engine, uid, wrong(sent.code)))
    assert info.value.message == "That code is not right. 4 attempts left."


def test_attempts_are_committed_although_the_check_fails(engine: Engine) -> None:
    uid = new_user(engine)
    sent = start(engine, uid)
    with engine.begin() as conn:
        outcome = check_code(conn, user_id=uid, code=wrong(sent.code), rules=RULES,
                             pepper=PEPPER, ip=IP, now=T0)
    with pytest.raises(InvalidRequest):  # the caller raises after the commit
        raise_for(outcome)
    with engine.connect() as conn:
        attempts = conn.execute(sa.select(phone_codes.c.attempts)
                                .where(phone_codes.c.id == sent.code_id)).scalar_one()
    assert attempts == 1


@pytest.mark.parametrize("typed", ["12345", "1234567", "abcdef", "", "１２３４５６", "12-345"])
def test_malformed_input_counts_as_a_wrong_attempt(engine: Engine, typed: str) -> None:
    uid = new_user(engine)
    sent = start(engine, uid)
    outcome = check(engine, uid, typed)
    assert outcome.status is CheckStatus.WRONG and outcome.attempts_left == 4
    assert code_row(engine, sent.code_id).attempts == 1


def test_spaces_in_the_typed_code_are_ignored(engine: Engine) -> None:
    uid = new_user(engine)
    sent = start(engine, uid)
    assert check(engine, uid, f" {sent.code[:3]} {sent.code[3:]}\n").verified
    assert normalize_code("x" * 100) is None


def test_expired_code_is_refused(engine: Engine) -> None:
    uid, other = new_user(engine), new_user(engine, "q@example.com")
    sent = start(engine, uid)
    outcome = check(engine, uid, sent.code, now=sent.expires_at)
    assert outcome.status is CheckStatus.EXPIRED
    assert user_phone(engine, uid) == (None, None, None)
    with pytest.raises(InvalidRequest) as info:
        raise_for(outcome)
    assert info.value.code == "phone_code_expired"
    assert info.value.message == "This code has expired. Request a new one."
    # A moment before, the same code works.
    sent = start(engine, other)
    assert check(engine, other, sent.code, now=sent.expires_at - dt.timedelta(seconds=1)).verified


def test_checking_without_a_code(engine: Engine) -> None:
    uid = new_user(engine)
    outcome = check(engine, uid, "123456")
    assert outcome.status is CheckStatus.NO_CODE
    with pytest.raises(InvalidRequest) as info:
        raise_for(outcome)
    assert info.value.code == "phone_code_no_pending"
    assert info.value.message == "Request a code first."


# --- resend cooldown and hourly caps ------------------------------------------------------------

def test_resend_too_soon_then_new_code_supersedes_the_old(engine: Engine) -> None:
    uid = new_user(engine)
    first = start(engine, uid)
    with pytest.raises(RateLimited) as info:
        start(engine, uid, now=later(30))
    assert info.value.status == 429 and info.value.headers == {"retry-after": "30"}
    assert info.value.message == "Please wait 30 seconds before requesting a new code."

    second = start(engine, uid, now=later(60))
    assert code_row(engine, first.code_id).superseded_at == later(60)
    assert code_row(engine, second.code_id).superseded_at is None
    if first.code != second.code:  # the old code no longer works
        assert check(engine, uid, first.code, now=later(61)).status is CheckStatus.WRONG
    assert check(engine, uid, second.code, now=later(62)).verified


def test_hourly_cap_per_account(engine: Engine) -> None:
    uid = new_user(engine)
    rules = PhoneRules(codes_per_number_per_hour=100, codes_per_ip_per_hour=100)
    for i in range(5):
        start(engine, uid, mobile(i), rules=rules, now=later(60 * i), ip=f"198.51.100.{i}")
    with pytest.raises(RateLimited) as info:
        start(engine, uid, mobile(9), rules=rules, now=later(300), ip="198.51.100.9")
    assert info.value.headers == {"retry-after": "3300"}
    assert info.value.message == "You have requested too many codes. Try again in 55 minutes."
    start(engine, uid, mobile(9), rules=rules, now=later(3600), ip="198.51.100.9")


def test_hourly_cap_per_number_across_accounts(engine: Engine) -> None:
    rules = PhoneRules(codes_per_account_per_hour=100, codes_per_ip_per_hour=100)
    for i in range(5):
        uid = new_user(engine, f"n{i}@example.com")
        start(engine, uid, rules=rules, now=later(i), ip=f"198.51.100.{i}")
    uid = new_user(engine, "n9@example.com")
    with pytest.raises(RateLimited) as info:
        start(engine, uid, rules=rules, now=later(10), ip="198.51.100.9")
    assert info.value.headers == {"retry-after": str(3600 - 10)}
    assert info.value.message.startswith("Too many codes have been sent to this number.")
    start(engine, uid, mobile(1), rules=rules, now=later(10), ip="198.51.100.9")  # other number


def test_hourly_cap_per_ip(engine: Engine) -> None:
    rules = PhoneRules(codes_per_ip_per_hour=3)
    for i in range(3):
        uid = new_user(engine, f"i{i}@example.com")
        start(engine, uid, mobile(i), rules=rules, ip="2001:db8:1:2::10", now=later(i))
    uid = new_user(engine, "i9@example.com")
    with pytest.raises(RateLimited) as info:  # another address of the same /64
        start(engine, uid, mobile(9), rules=rules, ip="2001:db8:1:2:ffff::1", now=later(5))
    assert info.value.message.startswith("Too many codes have been requested from your network.")
    assert info.value.headers == {"retry-after": str(3600 - 5)}
    sent = start(engine, uid, mobile(9), rules=rules, ip="2001:db8:1:3::1", now=later(5))
    assert code_row(engine, sent.code_id).ip == "2001:db8:1:3::/64"


def test_ip_key() -> None:
    assert ip_key("203.0.113.5") == "203.0.113.5"
    assert ip_key("2001:db8::1") == ip_key("2001:db8::ffff:1") == "2001:db8::/64"
    assert ip_key("::ffff:203.0.113.5") == "203.0.113.5"
    assert ip_key(None) is None


# --- one number, at most N accounts -------------------------------------------------------------

def verify_number(engine: Engine, uid: str, raw: str = CN_MOBILE, *, ip: str = IP) -> None:
    sent = start(engine, uid, raw, ip=ip)
    assert check(engine, uid, sent.code).verified


def test_number_verified_by_three_others_is_refused_at_start(engine: Engine) -> None:
    for i in range(3):
        verify_number(engine, new_user(engine, f"u{i}@example.com"))
    uid = new_user(engine, "fourth@example.com")
    with pytest.raises(InvalidRequest) as info:
        start(engine, uid)
    assert info.value.code == "phone_in_use" and info.value.param == "phone"
    assert "maximum number of accounts" in info.value.message
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(phone_codes)
                            .where(phone_codes.c.user_id == uid)).scalar_one() == 0
    start(engine, uid, rules=PhoneRules(max_accounts=4))  # the limit is configurable


def test_number_verified_by_three_others_is_refused_at_verify(engine: Engine) -> None:
    uids = [new_user(engine, f"u{i}@example.com") for i in range(4)]
    sent = [start(engine, uid, ip=f"198.51.100.{i}") for i, uid in enumerate(uids)]
    for uid, s in zip(uids[:3], sent[:3], strict=True):
        assert check(engine, uid, s.code).verified
    outcome = check(engine, uids[3], sent[3].code)
    assert outcome.status is CheckStatus.NUMBER_IN_USE
    assert user_phone(engine, uids[3]) == (None, None, None)
    with pytest.raises(InvalidRequest) as info:
        raise_for(outcome)
    assert info.value.code == "phone_in_use"


def test_concurrent_verifications_respect_the_limit(engine: Engine) -> None:
    rules = PhoneRules(max_accounts=1)
    a, b = new_user(engine, "a@example.com"), new_user(engine, "b@example.com")
    code_a, code_b = start(engine, a, rules=rules).code, start(engine, b, rules=rules).code
    results: list[CheckOutcome] = []

    def verify_b() -> None:
        results.append(check(engine, b, code_b, rules=rules))

    with engine.begin() as conn:
        assert check_code(conn, user_id=a, code=code_a, rules=rules, pepper=PEPPER, ip=IP,
                          now=T0).verified
        other = threading.Thread(target=verify_b)
        other.start()
        time.sleep(0.5)
        assert other.is_alive()  # waits for this transaction
    other.join(timeout=30)
    assert [r.status for r in results] == [CheckStatus.NUMBER_IN_USE]


def test_same_number_again_is_refused(engine: Engine) -> None:
    uid = new_user(engine)
    verify_number(engine, uid)
    with pytest.raises(InvalidRequest) as info:
        start(engine, uid, now=later(3600))
    assert info.value.code == "phone_already_verified"


# --- which numbers ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+86 138 0013 8000", None, "+8613800138000"),  # China mobile
        ("+44 7400 123456", None, "+447400123456"),  # UK mobile
        ("07400 123456", "GB", "+447400123456"),  # national format with a region
        ("07400 123456", "gb", "+447400123456"),
        ("+1 650 253 0000", None, "+16502530000"),  # FIXED_LINE_OR_MOBILE
    ],
)
def test_accepted_numbers(engine: Engine, raw: str, region: str | None, e164: str) -> None:
    uid = new_user(engine)
    sent = start(engine, uid, raw, region=region)
    assert sent.e164 == e164
    assert code_row(engine, sent.code_id).phone_hash == keyed_hash(PEPPER, e164, purpose="phone")


@pytest.mark.parametrize(
    ("raw", "region", "code", "words"),
    [
        ("+44 20 7946 0000", None, "phone_landline", "Landlines can't receive SMS codes"),
        # 07700 900xxx is the UK's drama range: not a valid number to libphonenumber.
        ("+44 7700 900123", None, "phone_invalid_number", "isn't a valid phone number"),
        ("07700 900123", "GB", "phone_invalid_number", "isn't a valid phone number"),
        ("+1 555 0100", None, "phone_invalid_number", "isn't a valid phone number"),
        ("07400 123456", None, "phone_invalid_country_code", "international format"),
        ("hello", None, "phone_not_a_number", "doesn't look like a phone number"),
        ("", None, "phone_empty", "Enter a phone number."),
    ],
)
def test_refused_numbers(engine: Engine, raw: str, region: str | None, code: str,
                         words: str) -> None:
    uid = new_user(engine)
    with pytest.raises(InvalidRequest) as info:
        start(engine, uid, raw, region=region)
    assert info.value.code == code and info.value.param == "phone"
    assert words in info.value.message
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(phone_codes)).scalar_one() == 0


def test_policy_from_names() -> None:
    mobile_only = policy_from_names(["mobile"])
    assert mobile_only.accept("+86 138 0013 8000") == "+8613800138000"
    with pytest.raises(PhoneNumberRejected) as info:
        mobile_only.accept("+1 650 253 0000")
    assert info.value.reason == "fixed_line_or_mobile"
    with pytest.raises(ValueError, match="unknown phone number type 'CELL'"):
        policy_from_names(["MOBILE", "CELL"])
    china_blocked = policy_from_names(["MOBILE"], None, ["cn"])
    with pytest.raises(ValueError, match="country"):
        china_blocked.accept("+86 138 0013 8000")
    uk_only = policy_from_names(["MOBILE", "FIXED_LINE_OR_MOBILE"], ["GB"])
    assert uk_only.accept("+44 7400 123456") == "+447400123456"
    with pytest.raises(ValueError, match="country"):
        uk_only.accept("+1 650 253 0000")


# --- changing the number, status, pruning -------------------------------------------------------

def test_changing_number_requires_reverification(engine: Engine) -> None:
    uid = new_user(engine)
    verify_number(engine, uid)
    before = user_phone(engine, uid)
    new = start(engine, uid, "+44 7400 123456", now=later(120))
    assert user_phone(engine, uid) == before  # not until the new code is checked
    with engine.connect() as conn:
        status = phone_status(conn, uid, rules=RULES, now=later(130))
    assert status.verified and status.masked == "+86138****8000"
    assert status.pending is not None and status.pending.masked == new.masked
    assert status.pending.resend_at == later(180) and status.pending.expires_at == later(720)

    assert check(engine, uid, wrong(new.code), now=later(140)).status is CheckStatus.WRONG
    assert user_phone(engine, uid) == before
    assert check(engine, uid, new.code, now=later(150)).verified
    assert user_phone(engine, uid) == (keyed_hash(PEPPER, "+447400123456", purpose="phone"),
                                       new.masked, later(150))
    with engine.connect() as conn:
        events = list_events(conn, action="phone.verified")
    assert events[0].target == new.masked and events[0].detail == {"replaced": "+86138****8000"}


def test_status_without_and_with_a_pending_code(engine: Engine) -> None:
    uid = new_user(engine)
    with engine.connect() as conn:
        status = phone_status(conn, uid, rules=RULES, now=T0)
    assert not status.verified and status.masked is None and status.pending is None
    sent = start(engine, uid)
    check(engine, uid, wrong(sent.code))
    with engine.connect() as conn:
        status = phone_status(conn, uid, rules=RULES, now=later(1))
        expired = phone_status(conn, uid, rules=RULES, now=sent.expires_at)
    assert not status.verified and status.pending is not None
    assert status.pending.attempts_left == 4 and status.pending.resend_at == later(60)
    assert expired.pending is None


def test_prune_deletes_old_unverified_codes_only(engine: Engine) -> None:
    uid, other = new_user(engine), new_user(engine, "q@example.com")
    old = start(engine, uid, now=T0)
    kept = start(engine, other, now=T0)
    assert check(engine, other, kept.code).verified
    recent = start(engine, uid, now=later(86400 - 60))
    with engine.begin() as conn:
        assert prune_codes(conn, now=later(86400 + 1)) == 1
        ids = set(conn.execute(sa.select(phone_codes.c.id)).scalars())
        with pytest.raises(ValueError, match="3600"):
            prune_codes(conn, older_than_s=60)
    assert ids == {kept.code_id, recent.code_id}
    assert old.code_id not in ids
