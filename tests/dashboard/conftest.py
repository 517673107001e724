"""One real Faregate server (SQLite, embedded dev model, sandbox payments, outbox email and
SMS) shared by a test module, and a real Chromium driven by Playwright."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.fixtures_gateway import Gateway, running_gateway

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(tmp_path_factory.mktemp("dash") / "fg") as gateway:
        yield gateway


def _ensure_chromium() -> None:
    """Debian's Chromium and a Chinese font (for readable zh-CN screenshots): installed with
    apt-get when we are root, else a loud failure (these tests are never skipped)."""
    from scripts.testenv import apt_install
    if not Path(CHROMIUM).exists() and not apt_install("chromium"):
        pytest.fail(f"{CHROMIUM} is missing and could not be installed: run "
                    "`apt-get install -y chromium` (as root) and try again")
    fc_list = shutil.which("fc-list")
    has_cjk = fc_list is not None and subprocess.run(
        [fc_list, ":lang=zh"], capture_output=True, text=True, check=False).stdout.strip()
    if not has_cjk and not apt_install("fonts-wqy-microhei"):
        pytest.fail("no Chinese font: run `apt-get install -y fonts-wqy-microhei` (as root)")


# Module scope, not session: Playwright's sync API keeps an asyncio loop running in this thread
# while it is open, and later tests that call asyncio.run() would fail.
@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    _ensure_chromium()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
