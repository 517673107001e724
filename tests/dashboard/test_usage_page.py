"""The Usage page over plain HTTP against a real server (no browser): it renders for a member
under the strict CSP, its script and the vendored chart library are served by Faregate itself,
and the API calls the script makes (the same query strings) answer. The browser journey in
test_browser.py shows a call's cost on the open page."""

from __future__ import annotations

import re
from pathlib import Path

from faregate.dashboard.pages import CSP, STATIC_DIR
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
