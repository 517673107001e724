"""The dashboard's pages over plain HTTP against a real server: who may see what, the security
headers, the language choice, and no English left on a Chinese page."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx2

from faregate.dashboard.i18n import catalog
from faregate.dashboard.pages import PAGES
from tests.e2e.api_client import verified_user
from tests.e2e.fixtures_gateway import Gateway

PUBLIC = [p.path for p in PAGES if not p.signed_in]
PRIVATE = [p.path for p in PAGES if p.signed_in]
ZH = {"Accept-Language": "zh-CN,zh;q=0.9"}


class _Text(HTMLParser):
    """The text a person sees (no script data, no attribute values but labels' aria)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        for name, value in attrs:
            if name in ("aria-label", "title", "placeholder") and value:
                self.parts.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def english_left(text: str) -> list[str]:
    """English catalog strings (that differ in Chinese) found in a page's text."""
    en, zh = catalog("en"), catalog("zh-CN")
    return [v for k, v in en.items() if v != zh[k] and len(v) > 3 and "{" not in v
            and re.search(r"(?<![A-Za-z])" + re.escape(v) + r"(?![A-Za-z])", text)]


def test_public_pages_render_with_security_headers(gw: Gateway) -> None:
    with gw.http() as http:
        for path in [*PUBLIC, "/"]:
            r = http.get(path)
            assert r.status_code == 200, (path, r.status_code)
            csp = r.headers["content-security-policy"]
            assert "script-src 'self';" in csp and "unsafe-inline" not in csp
            for part in ("style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'",
                         "form-action 'self'"):
                assert part in csp
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["referrer-policy"] == "no-referrer"
            assert "<script>" not in r.text and " style=" not in r.text  # nothing inline


def test_app_pages_send_strangers_to_sign_in(gw: Gateway) -> None:
    with gw.http() as http:
        for path in PRIVATE:
            r = http.get(path)
            assert r.status_code == 303
            assert r.headers["location"] == f"/signin?next={path}"


def test_front_page_shows_the_api_base_url(gw: Gateway) -> None:
    with gw.http() as http:
        page = http.get("/")
    assert gw.url in page.text
    assert 'href="/signup"' in page.text


def test_static_files_are_served_by_faregate(gw: Gateway) -> None:
    with gw.http() as http:
        page = http.get("/signin").text
        for asset in re.findall(r'(?:src|href)="(/static/app/[^"]+)"', page):
            r = http.get(asset)
            assert r.status_code == 200, asset
        assert "http://" not in re.sub(r"http://127\.0\.0\.1[^\"<]*", "", page)
        assert "https://" not in page


def test_language_follows_the_browser_then_the_switch(gw: Gateway) -> None:
    with gw.http() as http:
        en = http.get("/signin")
        zh = http.get("/signin", headers=ZH)
        assert 'lang="en"' in en.text and catalog("en")["signin.lead"] in en.text
        assert 'lang="zh-CN"' in zh.text and catalog("zh-CN")["signin.lead"] in zh.text
        switch = http.get("/lang/zh-CN?next=/forgot-password")
        assert switch.status_code == 303 and switch.headers["location"] == "/forgot-password"
        assert http.cookies.get("fg_lang") == "zh-CN"
        again = http.get("/forgot-password", headers={"Accept-Language": "en"})
        assert 'lang="zh-CN"' in again.text
        # The switch never sends anyone to another site.
        out = http.get("/lang/en?next=//evil.example/")
        assert out.headers["location"] == "/keys"


def test_chinese_pages_have_no_english_left(gw: Gateway) -> None:
    with gw.http(headers=ZH) as http:
        for path in [*PUBLIC, "/"]:
            text = visible_text(http.get(path).text)
            assert english_left(text) == [], path
    user = verified_user(gw.dep, gw.server.base_url, headers=ZH)
    try:
        for path in PRIVATE:
            r = user.http.get(path)
            assert r.status_code == 200, path
            assert 'lang="zh-CN"' in r.text
            assert english_left(visible_text(r.text)) == [], path
        assert user.http.get("/").headers["location"] == "/keys"
    finally:
        user.close()


def test_english_pages_for_a_signed_in_user(gw: Gateway) -> None:
    user = verified_user(gw.dep, gw.server.base_url, headers={"Accept-Language": "en-GB"})
    try:
        keys = user.http.get("/keys")
        assert keys.status_code == 200 and gw.url in keys.text
        assert "Sandbox mode" in keys.text  # payments are simulated on this server
        phone = user.http.get("/phone")
        assert '<option value="GB" selected>United Kingdom +44</option>' in phone.text
    finally:
        user.close()


def test_verification_link_lands_on_the_dashboard(gw: Gateway) -> None:
    """The emailed link is a dashboard page (its script posts the token to the API)."""
    with httpx2.Client(base_url=gw.server.base_url, timeout=30) as http:
        r = http.get("/verify-email?token=not-a-real-token")
    assert r.status_code == 200 and 'data-page="verify_email"' in r.text
