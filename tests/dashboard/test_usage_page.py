"""The Usage page against a real server: over plain HTTP, it renders for a member under the
strict CSP, its script and the vendored chart library are served by Faregate itself, and the
API calls the script makes (the same query strings) answer; in Chromium, a browser without
EventSource still sees a new call by polling. The journey in test_browser.py shows a call's
exact cost on the open page through the live stream."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from faregate.console.actions import grant_credit
from faregate.dashboard.pages import CSP, STATIC_DIR
from faregate.kit.money import nano_to_usd
from tests.e2e.api_client import verified_owner
from tests.e2e.fixtures_gateway import Gateway
from tests.e2e.sse_client import SseStream

ROOT = Path(__file__).parents[2]
UPLOT = STATIC_DIR / "vendor" / "uPlot.iife.min.js"


def test_usage_page_and_its_assets(gw: Gateway) -> None:
    user, org = verified_owner(gw.dep, gw.server.base_url,
                               headers={"Accept-Language": "zh-CN"})
    page = user.http.get("/usage")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CSP
    html = page.text
    assert 'data-page="usage"' in html and 'data-lang="zh-CN"' in html
    assert not re.search(r"\sstyle=|\son[a-z]+=|<style", html)
    # The only inline script is the catalog (JSON data, not run).
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", html)
    assert inline == [' type="application/json" id="fg-i18n"']
    assets = re.findall(r'(?:src|href)="(/static/app/[^"]+)"', html)
    wanted = {"pages/usage.js": "javascript", "vendor/uPlot.iife.min.js": "javascript",
              "vendor/uPlot.min.css": "css"}
    for name, kind in wanted.items():
        url = next(a for a in assets if a.split("?")[0].endswith("/" + name))
        r = user.http.get(url)
        assert r.status_code == 200 and kind in r.headers["content-type"], url
        assert r.content == (STATIC_DIR / name).read_bytes()

    # The vendored library names its version and origin, which the docs record with its
    # license next to it.
    version = re.match(r"/\*! https://github.com/leeoniya/uPlot \(v(1\.6\.\d+)\) \*/",
                       UPLOT.read_text())
    assert version, "static/vendor/uPlot.iife.min.js: not the upstream build"
    assert f"uPlot {version.group(1)}" in (ROOT / "docs" / "dashboard.md").read_text()
    assert "MIT License" in (STATIC_DIR / "vendor" / "uPlot.LICENSE").read_text()

    # What the script asks the API for (static/pages/usage.js), for a member with no usage.
    base = f"/api/orgs/{org}/usage"
    q = "start=2026-01-01&end=2026-01-30"
    series = user.http.get(f"{base}/series?width=1d&{q}")
    assert series.status_code == 200
    days = series.json()["buckets"]  # one a day, to the end date inclusive
    assert len(days) == 30 and all(d["results"] == [] for d in days)
    for by in ("model", "api_key_id", "project_id", "endpoint"):
        summary = user.http.get(f"{base}/summary?{q}&group_by={by}")
        assert summary.status_code == 200, summary.text
        assert summary.json()["total"]["cost_usd"] == "0"
        csv = user.http.get(f"{base}/export.csv?width=1d&{q}&group_by={by}")
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert user.http.get(f"{base}/recent?limit=20").json()["data"] == []
    live = SseStream(gw.server.base_url, f"{base}/live?backlog=20",
                     cookies=dict(user.http.cookies))
    try:
        assert live.status == 200
    finally:
        live.close()


def test_live_view_falls_back_to_polling(gw: Gateway, chromium: Any) -> None:
    user, org = verified_owner(gw.dep, gw.server.base_url)
    with gw.dep.engine.begin() as conn:
        grant_credit(conn, org, 10**9, reason="test", actor="test")
    key = user.post(f"/api/orgs/{org}/keys", {"name": "poll key"}).json()["key"]
    base = gw.server.base_url
    context = chromium.new_context(locale="en-US")  # type: ignore[attr-defined]
    try:
        context.add_init_script("delete window.EventSource")  # an old or locked-down browser
        context.add_cookies([{"name": c.name, "value": c.value, "url": base}
                             for c in user.http.cookies.jar])
        page = context.new_page()
        page.set_default_timeout(60_000)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(base + "/usage")
        page.locator("#live-state").filter(has_text="Updating every 2 s").wait_for()
        raw = gw.client(key).chat.completions.with_raw_response.create(
            model="faregate-dev", messages=[{"role": "user", "content": "Hello!"}])
        rid = raw.headers["x-request-id"]
        charged = gw.record(key, rid)["charged_nano_usd"]
        row = page.locator(f'#live-table tr[data-request-id="{rid}"]')
        row.wait_for()
        whole, _, frac = nano_to_usd(charged).partition(".")
        assert f"${whole}.{frac.ljust(2, '0')}" in row.inner_text()  # every digit
        assert "poll key" in row.inner_text()
        assert errors == []
    finally:
        context.close()
