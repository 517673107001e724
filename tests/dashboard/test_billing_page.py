"""Settings -> Billing beyond the journey, in a real browser: a top-up's receipt (HTML and
PDF links) and credit-history line; auto-recharge settings that persist; a redemption code
that adds credit, and the same code again refused inline. Screenshots in both languages."""

from __future__ import annotations

from typing import Any

from faregate.console.actions import issue_codes
from faregate.dashboard.i18n import catalog
from faregate.kit.secretfile import load_or_create_secret
from tests.dashboard.test_browser import WAIT_MS, add_card, fmt_usd, shoot, sign_in
from tests.e2e.api_client import verified_user
from tests.e2e.fixtures_gateway import Gateway


def _code(gw: Gateway, amount_nano: int) -> str:
    secret = load_or_create_secret(gw.dep.data_dir / "secrets" / "session_secret")
    with gw.dep.engine.begin() as conn:
        return issue_codes(conn, amount_nano=amount_nano, count=1, expires_at=None,
                           actor="test", secret=secret)[0]


def test_receipts_history_auto_recharge_and_codes(gw: Gateway, chromium: Any) -> None:
    base = gw.server.base_url
    for lang in ("en", "zh-CN"):
        msg = catalog(lang)
        user = verified_user(gw.dep, base)
        email = user.get("/api/me").json()["email"]
        org = user.get("/api/me").json()["personal_organization_id"]
        context = chromium.new_context(locale=lang, viewport={"width": 1440, "height": 900})
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
        try:
            sign_in(page, base, email, msg)
            page.goto(base + "/billing")
            page.get_by_text(msg["billing.no_receipts"]).wait_for()
            add_card(page, msg, "4242424242424242")
            page.locator("#methods").filter(has_text="4242").wait_for()
            # A card whose bank asks for 3-D Secure: the sandbox's stand-in asks on the page.
            add_card(page, msg, "4000002500003155")
            page.get_by_text(msg["billing.3ds_prompt"]).wait_for()
            page.get_by_role("button", name=msg["billing.3ds_complete"]).click()
            page.locator("#methods").filter(has_text="3155").wait_for()
            # Another amount than the presets (typing it clears the preset choice).
            page.get_by_label(msg["field.custom_amount"]).fill("5")
            assert not page.locator("#presets input:checked").count()
            page.get_by_role("button", name=msg["billing.topup_submit"]).click()

            # The receipt and the credit history, without reloading.
            receipt = page.locator("#receipts-table tbody tr").first
            receipt.filter(has_text=fmt_usd(5, lang)).wait_for()
            assert "4242" in receipt.inner_text()
            pdf = receipt.get_by_role("link", name="PDF").get_attribute("href") or ""
            got = context.request.get(base + pdf)
            assert got.ok and got.body().startswith(b"%PDF")
            page.locator("#history-table tbody tr").filter(
                has_text=msg["billing.kind.topup"]).wait_for()

            # Auto-recharge: saved, and still there after a reload.
            page.get_by_label(msg["billing.auto_enabled"]).check()
            page.get_by_label(msg["billing.auto_threshold"]).fill("2")
            page.get_by_label(msg["billing.auto_amount"]).fill("500")  # over the top-up range
            save = page.locator("#auto-form").get_by_role("button", name=msg["common.save"])
            save.click()
            page.locator("#auto-form .error").filter(has_text=fmt_usd(50, lang)).wait_for()
            page.get_by_label(msg["billing.auto_amount"]).fill("20")
            save.click()
            page.get_by_text(msg["billing.auto_saved"]).wait_for()
            page.reload()
            page.locator("#receipts-table tbody tr").first.wait_for()
            assert page.get_by_label(msg["billing.auto_enabled"]).is_checked()
            assert page.get_by_label(msg["billing.auto_amount"]).input_value() == "20"
            auto = user.get(f"/api/orgs/{org}/billing").json()["auto_recharge"]
            assert auto["enabled"] and auto["threshold"]["usd"] == "2"

            # A code adds its credit; the same code again is refused, inline.
            code = _code(gw, 3_000_000_000)
            page.get_by_label(msg["billing.redeem_code"], exact=True).fill(code)
            page.get_by_role("button", name=msg["billing.redeem_submit"]).click()
            page.locator("#redeem-form .ok").filter(has_text=fmt_usd(3, lang)).wait_for()
            page.locator("#balance").filter(has_text=fmt_usd(8, lang)).wait_for()
            page.locator("#history-table tbody tr").filter(
                has_text=msg["billing.kind.redemption"]).wait_for()
            page.get_by_label(msg["billing.redeem_code"], exact=True).fill(code)
            page.get_by_role("button", name=msg["billing.redeem_submit"]).click()
            page.locator("#redeem-form .error").filter(has_text=msg["error.code_used"]).wait_for()
            assert gw.dep.balance_of_org(org)[0] == 8_000_000_000
            shoot(page, "billing-full", lang)
            assert errors == []
        finally:
            context.close()
            user.close()
