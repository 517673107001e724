"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against a real
server: sign up -> the emailed link -> the texted code -> a key copied from the page -> a call
with the official openai SDK. In English and in Chinese, with screenshots of every page at
phone and desktop widths saved to docs/screenshots/.

Waits are generous (the machine is shared); nothing here measures time."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

from faregate.billing.state import suspend
from faregate.console.actions import set_org_active
from faregate.dashboard.i18n import catalog
from faregate.kit.money import nano_to_usd
from tests.e2e.api_client import (
    PASSWORD,
    last_link_token,
    last_sms_code,
    outbox,
    verified_user,
)
from tests.e2e.fixtures_gateway import Gateway

SHOTS = Path(__file__).parents[2] / "docs" / "screenshots"
WIDTHS = (1440, 390)
WAIT_MS = 60_000


def shoot(page: Any, name: str, lang: str) -> None:
    """Screenshots of the page as it is, at desktop and phone widths (the whole page, or
    the window while a dialog is open)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(150)  # let the layout settle after the resize
        dialog_open = page.locator("dialog[open]").count() > 0
        page.screenshot(path=str(SHOTS / f"{name}-{lang}-{width}.png"),
                        full_page=not dialog_open)
    page.set_viewport_size({"width": 1440, "height": 900})


def emailed_link(gw: Gateway, to: str, path: str) -> str:
    for mail in reversed(outbox(gw.dep.data_dir, "email")):
        if mail["to"] == to:
            m = re.search(r"https?://\S+" + re.escape(path) + r"\?token=[A-Za-z0-9_\-]+",
                          mail["text"])
            if m:
                return m.group(0)
    raise AssertionError(f"no {path} link emailed to {to}")


def add_card(page: Any, msg: dict[str, str], number: str) -> None:
    page.get_by_role("button", name=msg["billing.add_card"]).click()
    dialog = page.locator("#card-dialog")
    dialog.get_by_label(msg["field.card_number"]).press_sequentially(number.replace(" ", ""))
    assert dialog.get_by_label(msg["field.card_number"]).input_value() == " ".join(
        number.replace(" ", "")[i:i + 4] for i in range(0, 16, 4))  # formatted as typed
    dialog.get_by_label(msg["field.card_expiry"]).press_sequentially("12" + str(
        (dt.date.today().year + 3) % 100))
    dialog.get_by_label(msg["field.card_cvc"]).fill("737")
    dialog.get_by_label(msg["field.card_name"]).fill("Ada Lovelace")
    dialog.get_by_label(msg["field.address"]).fill("1 Main St")
    dialog.get_by_label(msg["field.city"]).fill("San Francisco")
    dialog.get_by_label(msg["field.postal_code"]).fill("94107")
    dialog.get_by_label(msg["field.country"]).select_option("US")
    dialog.get_by_role("button", name=msg["billing.save_card"]).click()


def sign_in(page: Any, base: str, email: str, msg: dict[str, str]) -> None:
    """Sign in through the page (the test password) and land on /keys."""
    page.goto(base + "/signin")
    page.get_by_label(msg["field.email"]).fill(email)
    page.get_by_label(msg["field.password"]).fill(PASSWORD)
    page.get_by_role("button", name=msg["signin.submit"]).click()
    page.wait_for_url("**/keys")


def fmt_usd(amount: int | Decimal, lang: str) -> str:
    """As the page shows it (Intl): at least two decimals, all the digits of a fraction of a
    cent."""
    text = format(Decimal(amount).normalize(), "f")
    whole, _, frac = text.partition(".")
    text = f"{whole}.{frac.ljust(2, '0')}"
    return f"US${text}" if lang == "zh-CN" else f"${text}"


@pytest.mark.parametrize(("lang", "number"), [("en", "7400 800001"), ("zh-CN", "7400 800002")])
def test_sign_up_to_first_call(gw: Gateway, chromium: Any, lang: str, number: str) -> None:
    msg = catalog(lang)
    base = gw.server.base_url
    email = f"browser-{lang.lower()}@example.com"
    context = chromium.new_context(locale=lang, viewport={"width": 1440, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        # The front page, in the browser's language.
        page.goto(base + "/")
        assert page.locator("html").get_attribute("lang") == lang
        page.get_by_role("heading", name=msg["home.title"]).wait_for()
        assert gw.url in page.inner_text("main")
        shoot(page, "home", lang)

        # Sign up.
        page.get_by_role("link", name=msg["signup.title"]).first.click()
        page.get_by_role("heading", name=msg["signup.title"]).wait_for()
        shoot(page, "signup", lang)
        page.get_by_label(msg["field.email"]).fill("not an address")
        page.get_by_label(msg["field.password"]).fill(PASSWORD)
        page.get_by_role("button", name=msg["signup.submit"]).click()
        page.get_by_text(msg["error.invalid_email"]).wait_for()  # inline, in the language
        page.get_by_label(msg["field.email"]).fill(email)
        page.get_by_role("button", name=msg["signup.submit"]).click()
        page.wait_for_url("**/verify-email")
        page.get_by_text(msg["verify.check_inbox"]).wait_for()
        shoot(page, "verify-email-sent", lang)

        # The emailed link opens a dashboard page that completes the verification; the token
        # leaves the address bar.
        page.goto(emailed_link(gw, email, "/verify-email"))
        page.get_by_text(msg["verify.done"]).wait_for()
        assert "token" not in page.url
        shoot(page, "verify-email-done", lang)
        page.get_by_role("link", name=msg["common.continue"]).click()

        # The phone, by the texted code.
        page.wait_for_url("**/phone")
        page.get_by_role("heading", name=msg["phone.title"]).wait_for()
        page.get_by_label(msg["field.country"]).select_option("GB")
        shoot(page, "phone", lang)
        page.get_by_label(msg["field.phone"]).fill(number)
        page.get_by_role("button", name=msg["phone.send"]).click()
        page.get_by_label(msg["field.code"]).wait_for()
        assert page.get_by_role("button", name=msg["phone.resend"]).is_disabled()  # countdown
        page.get_by_label(msg["field.code"]).fill("000000" if lang == "en" else "999999")
        page.get_by_role("button", name=msg["phone.verify"]).click()
        page.get_by_text(msg["error.phone_code_invalid"]).wait_for()  # a wrong code, inline
        shoot(page, "phone-code", lang)
        code = last_sms_code(gw.dep.data_dir, "+44" + number.replace(" ", ""))
        page.get_by_label(msg["field.code"]).fill(code)
        page.get_by_role("button", name=msg["phone.verify"]).click()
        page.get_by_text(msg["phone.verified"]).wait_for()
        shoot(page, "phone-verified", lang)

        # Billing: a declined card says why, inline; a good one is saved; top up $5.
        page.get_by_role("link", name=msg["nav.billing"]).click()
        page.get_by_role("heading", name=msg["billing.title"]).wait_for()
        page.locator("#balance").filter(has_text="0").wait_for()
        shoot(page, "billing-empty", lang)
        add_card(page, msg, "4000 0000 0000 9995")
        page.get_by_text(msg["error.insufficient_funds"]).wait_for()
        assert page.locator("#card-brand").inner_text() == "Visa"
        shoot(page, "billing-card-declined", lang)
        page.get_by_role("button", name=msg["common.cancel"]).click()
        add_card(page, msg, "4242424242424242")
        page.locator("#methods").filter(has_text="4242").wait_for()
        assert page.locator("#card-number").input_value() == ""  # the form is reset
        page.locator("#presets").get_by_text(fmt_usd(5, lang), exact=True).click()
        page.get_by_role("button", name=msg["billing.topup_submit"]).click()
        done = msg["billing.topup_done"].split("{")[0]
        page.get_by_text(done).wait_for()
        assert page.locator("#balance").inner_text() == fmt_usd(5, lang)
        shoot(page, "billing", lang)
        page.get_by_role("link", name=msg["nav.keys"]).click()

        # A key: created, copied from the page, used with the official SDK.
        page.wait_for_url("**/keys")
        page.get_by_text(msg["keys.empty"]).wait_for()
        assert gw.url in page.inner_text("main")
        shoot(page, "keys-empty", lang)
        page.get_by_role("button", name=msg["keys.create"]).click()
        page.locator("#key-dialog").get_by_label(msg["field.key_name"]).fill("browser key")
        shoot(page, "keys-create", lang)
        page.get_by_role("button", name=msg["keys.create_submit"]).click()
        page.get_by_role("heading", name=msg["keys.secret_title"]).wait_for()
        page.get_by_role("button", name=msg["common.copy"]).click()
        page.get_by_text(msg["common.copied"]).wait_for()
        key = page.evaluate("navigator.clipboard.readText()")
        assert key.startswith("sk-") and key == page.input_value("#secret-value")
        shoot(page, "keys-created", lang)
        page.get_by_role("button", name=msg["common.done"]).click()
        row = page.locator("#keys-table tbody tr")
        row.filter(has_text="browser key").wait_for()
        assert key not in page.content()  # the list shows it redacted
        assert msg["status.active"] in row.inner_text()

        # The usage page, open in another tab before the call, will show it without a reload.
        usage = context.new_page()
        usage.set_default_timeout(WAIT_MS)
        usage.on("pageerror", lambda e: errors.append(str(e)))
        usage.goto(base + "/usage")
        usage.get_by_role("heading", name=msg["usage.title"]).wait_for()
        usage.locator("#live-state").filter(has_text=msg["usage.live_on"]).wait_for()
        usage.get_by_text(msg["usage.empty"]).wait_for()
        usage.evaluate("window.fgNotReloaded = true")

        client = openai.OpenAI(api_key=key, base_url=gw.url, timeout=60, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="faregate-dev", messages=[{"role": "user", "content": "Hello!"}])
        assert raw.parse().choices[0].message.content
        charged = gw.record(key, raw.headers["x-request-id"])["charged_nano_usd"]
        assert charged > 0

        # The live view shows the call and its exact cost; the totals, the table and the
        # charts catch up (they read the rollups) — all without reloading the page.
        cost = fmt_usd(Decimal(charged) / 10**9, lang)
        live = usage.locator(f'#live-table tr[data-request-id="{raw.headers["x-request-id"]}"]')
        live.wait_for()
        assert cost in live.inner_text() and "faregate-dev" in live.inner_text()
        usage.locator("#usage-cost").filter(has_text=cost).wait_for()
        usage.locator("#usage-table tbody tr").filter(has_text="faregate-dev").filter(
            has_text=cost).wait_for()
        # The cost chart (uPlot, a canvas): hovering today's bar, the last one, shows the
        # day's cost in the chart's legend.
        plot = usage.locator("#chart-cost .u-over")
        box = plot.bounding_box()
        assert box is not None
        usage.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)
        usage.locator("#chart-cost .u-legend .u-series").nth(1).filter(has_text=cost).wait_for()
        assert usage.locator("#chart-cost-empty").is_hidden()
        assert usage.evaluate("window.fgNotReloaded") is True
        shoot(usage, "usage", lang)
        usage.select_option("#usage-group", "api_key_id")
        usage.get_by_role("button", name=msg["usage.apply"]).click()
        usage.locator("#usage-table tbody tr").filter(has_text="browser key").wait_for()
        href = usage.locator("#usage-csv").get_attribute("href") or ""
        csv = context.request.get(base + href)
        assert csv.ok and "browser key" in csv.text()
        assert nano_to_usd(charged) in csv.text()
        usage.close()

        # The balance went down by exactly that cost.
        page.get_by_role("link", name=msg["nav.billing"]).click()
        left = Decimal(5) - Decimal(charged) / 10**9
        page.locator("#balance").filter(has_text=fmt_usd(left, lang)).wait_for()
        page.get_by_role("link", name=msg["nav.keys"]).click()
        row.filter(has_text="browser key").wait_for()

        # Rename, then revoke.
        page.get_by_role("button", name=msg["keys.rename"]).click()
        page.locator("#rename-name").fill("renamed key")
        page.get_by_role("button", name=msg["common.save"]).click()
        row.filter(has_text="renamed key").wait_for()
        shoot(page, "keys", lang)
        page.get_by_role("button", name=msg["keys.revoke"]).click()
        shoot(page, "keys-revoke", lang)
        page.locator("#revoke-form").get_by_role("button", name=msg["keys.revoke"]).click()
        row.filter(has_text=msg["status.revoked"]).wait_for()

        # The usage page is in the navigation.
        page.get_by_role("link", name=msg["nav.usage"]).click()
        page.get_by_role("heading", name=msg["usage.title"]).wait_for()

        # Sign out; the app pages send strangers to sign in, which comes back.
        page.get_by_role("button", name=msg["nav.signout"]).click()
        page.wait_for_url("**/signin")
        page.goto(base + "/keys")
        page.wait_for_url("**/signin?next=/keys")
        page.get_by_label(msg["field.email"]).fill(email)
        page.get_by_label(msg["field.password"]).fill("wrong password here")
        page.get_by_role("button", name=msg["signin.submit"]).click()
        page.get_by_text(msg["error.invalid_credentials"]).wait_for()
        shoot(page, "signin", lang)
        page.get_by_label(msg["field.password"]).fill(PASSWORD)
        page.get_by_role("button", name=msg["signin.submit"]).click()
        page.wait_for_url("**/keys")
        page.get_by_role("button", name=msg["nav.signout"]).click()
        page.wait_for_url("**/signin")

        # Forgot the password: the emailed link sets a new one.
        page.get_by_role("link", name=msg["signin.forgot"]).click()
        page.get_by_label(msg["field.email"]).fill(email)
        page.get_by_role("button", name=msg["forgot.submit"]).click()
        page.get_by_text(msg["forgot.sent"]).wait_for()
        shoot(page, "forgot-password", lang)
        last_link_token(gw.dep.data_dir, email, "/reset-password")  # it was sent
        page.goto(emailed_link(gw, email, "/reset-password"))
        assert "token" not in page.url
        page.get_by_label(msg["field.new_password"], exact=True).fill(PASSWORD + " new")
        page.get_by_label(msg["field.confirm_password"]).fill(PASSWORD + " typo")
        page.get_by_role("button", name=msg["reset.submit"]).click()
        page.get_by_text(msg["error.password_mismatch"]).wait_for()
        shoot(page, "reset-password", lang)
        page.get_by_label(msg["field.confirm_password"]).fill(PASSWORD + " new")
        page.get_by_role("button", name=msg["reset.submit"]).click()
        page.get_by_text(msg["reset.done"]).wait_for()

        # The language switch is remembered.
        other = "en" if lang == "zh-CN" else "zh-CN"
        page.get_by_role("link", name=catalog(other)[f"lang.{other}"]).click()
        page.wait_for_url("**/reset-password")
        assert page.locator("html").get_attribute("lang") == other
        page.goto(base + "/signin")
        assert page.locator("html").get_attribute("lang") == other
        page.get_by_role("heading", name=catalog(other)["signin.title"]).wait_for()
        # No script error and no Content-Security-Policy violation (the refused calls above
        # are logged as failed loads: expected).
        assert [e for e in errors if not e.startswith("Failed to load resource")] == []
    finally:
        context.close()


def test_suspended_organization_sees_why(gw: Gateway, chromium: Any) -> None:
    user = verified_user(gw.dep, gw.server.base_url)
    email = user.get("/api/me").json()["email"]
    org = user.get("/api/me").json()["personal_organization_id"]
    user.close()
    with gw.dep.engine.begin() as conn:
        suspend(conn, org, reason="a charge failed", actor="test")
    msg = catalog("en")
    context = chromium.new_context(locale="en", viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        sign_in(page, gw.server.base_url, email, msg)
        page.locator("#notice").get_by_text(msg["billing.suspended"]).wait_for()
        page.locator("#notice").get_by_role("link", name=msg["billing.fix"]).click()
        page.wait_for_url("**/billing")
        page.locator("#suspended").wait_for()
        shoot(page, "billing-suspended", "en")
    finally:
        context.close()


def test_deactivated_organization_sees_why(gw: Gateway, chromium: Any) -> None:
    user = verified_user(gw.dep, gw.server.base_url)
    email = user.get("/api/me").json()["email"]
    org = user.get("/api/me").json()["personal_organization_id"]
    user.close()
    with gw.dep.engine.begin() as conn:
        set_org_active(conn, org, active=False, reason="unpaid invoice", actor="test")
    for lang in ("en", "zh-CN"):
        msg = catalog(lang)
        context = chromium.new_context(locale=lang, viewport={"width": 1440, "height": 900})
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        try:
            sign_in(page, gw.server.base_url, email, msg)
            banner = msg["org.deactivated_banner"].format(reason="unpaid invoice")
            page.locator("#notice").get_by_text(banner).wait_for()
            shoot(page, "deactivated", lang)
        finally:
            context.close()
