"""Limits, Organization and Settings in a real browser: a new owner sees their tier and its
rate limits, sets a project budget and the low-balance email, renames the organization,
invites a member and creates a project; the language chosen in Settings is stored on the
account, so a browser without the cookie (and asking for English) opens in it after signing
in. Screenshots of the three pages in both languages at both widths."""

from __future__ import annotations

from typing import Any

from faregate.dashboard.i18n import catalog
from tests.dashboard.test_browser import WAIT_MS, fmt_usd, shoot, sign_in
from tests.e2e.api_client import verified_user
from tests.e2e.fixtures_gateway import Gateway


def test_limits_organization_and_settings(gw: Gateway, chromium: Any) -> None:
    base = gw.server.base_url
    user = verified_user(gw.dep, base)
    me = user.get("/api/me").json()
    email, org = me["email"], me["personal_organization_id"]
    user.close()
    msg = catalog("en")
    context = chromium.new_context(locale="en", viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        sign_in(page, base, email, msg)

        # Limits: a new organization is on tier 0 (Free): 3 requests a minute.
        page.get_by_role("link", name=msg["nav.limits"]).click()
        page.locator("#tier-name").filter(has_text="Free").wait_for()
        assert page.inner_text("#tier-rpm") == "3"
        page.locator("#tiers-table tbody tr").first.wait_for()
        row = page.locator("#budgets-table tbody tr").first
        row.filter(has_text=msg["limits.no_budget"]).wait_for()
        row.get_by_role("button", name=msg["limits.edit_budget"]).click()
        page.get_by_label(msg["limits.monthly_budget_field"]).fill("10")
        page.locator("#budget-form").get_by_role("button", name=msg["common.save"]).click()
        row.filter(has_text=fmt_usd(10, "en")).wait_for()
        page.get_by_label(msg["limits.low_balance_field"]).fill("5")
        page.locator("#alert-form").get_by_role("button", name=msg["common.save"]).click()
        page.locator("#alert-form .ok").wait_for()
        shoot(page, "limits", "en")

        # Organization: rename, invite, a project.
        page.get_by_role("link", name=msg["nav.organization"]).click()
        page.locator("#members-table tbody tr").filter(has_text=email).wait_for()  # loaded
        page.get_by_label(msg["org.name"]).fill("Acme Research")
        page.locator("#rename-org-form").get_by_role("button", name=msg["org.rename"]).click()
        page.locator("#rename-org-form .ok").wait_for()
        page.locator("#invite-form").get_by_label(msg["field.email"]).fill("bob@example.com")
        page.get_by_role("button", name=msg["org.invite_submit"]).click()
        page.locator("#invitations-table tbody tr").filter(has_text="bob@example.com").wait_for()
        page.get_by_label(msg["org.new_project"]).fill("Research")
        page.get_by_role("button", name=msg["org.create_project"]).click()
        created = page.locator("#projects-table tbody tr").filter(has_text="Research")
        created.get_by_role("button", name=msg["org.rename"]).click()
        page.get_by_label(msg["org.project_name"], exact=True).fill("Research lab")
        page.locator("#project-rename-form").get_by_role("button", name=msg["org.rename"]).click()
        page.locator("#projects-table tbody tr").filter(has_text="Research lab").wait_for()
        assert gw.dep.query("SELECT count(*) FROM projects WHERE organization_id = :o "
                            "AND name = 'Research lab'", o=org)[0][0] == 1
        shoot(page, "organization", "en")
        assert gw.dep.query("SELECT name FROM organizations WHERE id = :o", o=org)[0][0] == (
            "Acme Research")

        # Settings: the language, stored on the account.
        page.get_by_role("link", name=msg["nav.settings"]).click()
        page.locator("#me-email").filter(has_text=email).wait_for()
        page.locator("#sessions-table tbody tr").first.wait_for()
        shoot(page, "settings", "en")
        page.get_by_label(msg["settings.language_field"]).select_option("zh-CN")
        page.locator("#language-form").get_by_role("button", name=msg["common.save"]).click()
        page.wait_for_url("**/settings")
        page.locator("html[lang=zh-CN]").wait_for()
        zh = catalog("zh-CN")
        for path, name in (("/limits", "limits"), ("/organization", "organization"),
                           ("/settings", "settings")):
            page.goto(base + path)
            page.get_by_role("heading", name=zh[f"{'org' if name == 'organization' else name}"
                                                 ".title"]).wait_for()
            page.locator("table tbody tr").first.wait_for()
            shoot(page, name, "zh-CN")
        assert errors == []
    finally:
        context.close()

    # Another browser, English, no cookie: after signing in, the stored language.
    context = chromium.new_context(locale="en", viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        sign_in(page, base, email, msg)
        assert page.locator("html").get_attribute("lang") == "zh-CN"
        page.get_by_role("heading", name=catalog("zh-CN")["keys.title"]).wait_for()
    finally:
        context.close()
