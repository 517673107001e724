"""The operator console's web pages (/admin) in a real browser against a real server: an admin
signs in with password + TOTP (a wrong code is refused inline), finds a user, grants credit
(the balance on the page and in the ledger change), is refused a refund of an unknown payment
on the form, resets the member's phone, deactivates the organization, and finds the actions in
the audit trail with actor, target and the change; a support operator sees the overview
without the forms that change things, and adds a note. Screenshots of every console page in
both languages."""

from __future__ import annotations

from typing import Any

from faregate.dashboard.i18n import catalog
from tests.dashboard.test_browser import WAIT_MS, fmt_usd, shoot
from tests.e2e.api_client import verified_user
from tests.e2e.fixtures_gateway import Gateway
from tests.e2e.operator_client import NewOperator, create_operator


def _sign_in(page: Any, base: str, op: NewOperator, msg: dict[str, str], code: str) -> None:
    page.get_by_label(msg["field.email"]).fill(op.email)
    page.get_by_label(msg["field.password"]).fill(op.password)
    page.get_by_label(msg["admin.field.totp"]).fill(code)
    page.get_by_role("button", name=msg["signin.submit"]).click()


def test_admin_and_support_in_the_console(gw: Gateway, chromium: Any) -> None:
    base = gw.server.base_url
    admin = create_operator(gw.dep, "admin@ops.example.com", "admin")
    support = create_operator(gw.dep, "support@ops.example.com", "support")
    user = verified_user(gw.dep, base)
    me = user.get("/api/me").json()
    email, org, user_id = me["email"], me["personal_organization_id"], me["id"]
    user.close()

    msg = catalog("en")
    context = chromium.new_context(locale="en", viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        # Not signed in: the console sends the operator to sign in, and back afterwards.
        page.goto(base + "/admin")
        page.wait_for_url("**/admin/signin?next=%2Fadmin")
        page.get_by_role("heading", name=msg["admin.signin.title"]).wait_for()
        _sign_in(page, base, admin, msg, "000000")
        page.get_by_text(msg["admin.error.invalid_credentials"]).wait_for()  # inline
        shoot(page, "admin-signin", "en")
        _sign_in(page, base, admin, msg, admin.code())
        page.wait_for_url(base + "/admin")
        page.locator("#op-who").filter(has_text=admin.email).wait_for()

        # Find the user; open their organization.
        page.get_by_label(msg["admin.search.label"]).fill(email)
        page.get_by_role("button", name=msg["admin.search.submit"]).click()
        page.locator("#admin-users tbody tr").filter(has_text=email).wait_for()
        shoot(page, "admin-search", "en")
        page.locator("#admin-users tbody tr").filter(has_text=email).get_by_role(
            "link").click()
        page.wait_for_url(f"**/admin/orgs/{org}")
        page.locator("#org-balance").filter(has_text=fmt_usd(0, "en")).wait_for()

        # Grant $2.50 with a reason: the page and the ledger agree.
        grant = page.locator("#grant-form")
        grant.get_by_label(msg["admin.field.amount_usd"]).fill("2.50")
        grant.get_by_label(msg["admin.field.reason"]).fill("welcome credit")
        grant.get_by_role("button", name=msg["admin.action.grant"]).click()
        grant.locator(".ok").wait_for()
        page.locator("#org-balance").filter(has_text=fmt_usd(2.5, "en")).wait_for()
        assert gw.dep.balance_of_org(org)[0] == 2_500_000_000
        page.locator("#org-ledger tbody tr").filter(has_text="welcome credit").wait_for()

        # A refund of a payment the organization never made is refused on the form.
        refund = page.locator("#refund-form")
        refund.get_by_label(msg["admin.field.payment_id"]).fill("pi_unknown")
        refund.get_by_label(msg["admin.field.reason"]).fill("customer asked")
        refund.get_by_role("button", name=msg["admin.action.refund"]).click()
        refund.get_by_text(msg["admin.error.not_found"]).wait_for()
        assert gw.dep.balance_of_org(org)[0] == 2_500_000_000

        # Reset the member's phone number.
        phone = page.locator("#phone-form")
        assert phone.get_by_label(msg["admin.field.member"]).input_value() == user_id
        phone.get_by_label(msg["admin.field.reason"]).fill("lost their phone")
        phone.get_by_role("button", name=msg["admin.action.reset_phone"]).click()
        phone.get_by_text(msg["admin.done.reset_phone"]).wait_for()

        # Deactivate.
        form = page.locator("#activation-form")
        form.get_by_label(msg["admin.field.reason"]).fill("chargeback fraud")
        form.get_by_role("button", name=msg["admin.action.deactivate"]).click()
        page.locator("#org-status").filter(has_text=msg["admin.status.deactivated"]).wait_for()
        page.get_by_role("button", name=msg["admin.action.reactivate"]).wait_for()
        shoot(page, "admin-org", "en")

        # Both in the audit trail: who, on what, the change.
        page.get_by_role("link", name=msg["admin.nav.audit"]).click()
        page.get_by_label(msg["admin.col.organization"]).fill(org)
        page.get_by_role("button", name=msg["admin.search.submit"]).click()
        for action in ("credit.granted", "org.deactivated"):
            row = page.locator("#admin-audit tbody tr").filter(has_text=action)
            row.wait_for()
            assert f"operator:{admin.id}" in row.inner_text()
            assert org in row.inner_text()
        assert "chargeback fraud" in page.locator("#admin-audit tbody").inner_text()
        page.get_by_label(msg["admin.col.organization"]).fill("")
        page.get_by_label(msg["admin.col.action"]).fill("user.*")
        page.get_by_role("button", name=msg["admin.search.submit"]).click()
        row = page.locator("#admin-audit tbody tr").filter(has_text="user.phone_reset")
        row.wait_for()
        assert user_id in row.inner_text() and f"operator:{admin.id}" in row.inner_text()
        shoot(page, "admin-audit", "en")

        page.get_by_role("link", name=msg["admin.nav.models"]).click()
        page.locator("#admin-models tbody tr").filter(has_text="faregate-dev").first.wait_for()
        shoot(page, "admin-models", "en")
        page.get_by_role("link", name=msg["admin.nav.upstreams"]).click()
        page.locator("#admin-upstreams tbody tr").first.wait_for()
        shoot(page, "admin-upstreams", "en")
        page.get_by_role("button", name=msg["nav.signout"]).click()
        page.wait_for_url("**/admin/signin")
        assert errors == []
    finally:
        context.close()

    # Support, in Chinese: everything visible, nothing to change but notes.
    msg = catalog("zh-CN")
    context = chromium.new_context(locale="zh-CN", viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        page.goto(base + f"/admin/orgs/{org}")
        page.wait_for_url("**/admin/signin?next=**")
        shoot(page, "admin-signin", "zh-CN")
        _sign_in(page, base, support, msg, support.code())
        page.wait_for_url(f"**/admin/orgs/{org}")
        page.locator("#org-balance").filter(has_text=fmt_usd(2.5, "zh-CN")).wait_for()
        page.locator("#op-who").filter(has_text=msg["admin.role.support"]).wait_for()
        assert page.locator("#org-actions").is_hidden()
        assert page.get_by_role("button", name=msg["admin.action.grant"]).count() == 0
        page.get_by_label(msg["admin.field.note"]).fill("客户来电询问退款")
        page.get_by_role("button", name=msg["admin.action.note"]).click()
        page.locator("#org-notes li").filter(has_text="客户来电询问退款").wait_for()
        shoot(page, "admin-org", "zh-CN")
        for nav, name in (("admin.nav.search", "admin-search"), ("admin.nav.models",
                          "admin-models"), ("admin.nav.upstreams", "admin-upstreams"),
                          ("admin.nav.audit", "admin-audit")):
            page.get_by_role("link", name=msg[nav]).click()
            page.get_by_role("heading", name=msg[nav]).wait_for()
            page.locator("table tbody tr").first.wait_for()
            shoot(page, name, "zh-CN")
    finally:
        context.close()
