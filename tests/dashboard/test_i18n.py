"""The catalogs and the choice of language (no server needed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from faregate.dashboard.countries import countries
from faregate.dashboard.i18n import LANGUAGES, catalog, negotiate, region_of, translate

TEMPLATES = Path(__file__).parents[2] / "src/faregate/dashboard/templates"
STATIC = Path(__file__).parents[2] / "src/faregate/dashboard/static"


def test_catalogs_have_the_same_keys_and_placeholders() -> None:
    en, zh = catalog("en"), catalog("zh-CN")
    assert set(en) == set(zh)
    for key, text in en.items():
        assert text.strip() and zh[key].strip(), key
        assert set(re.findall(r"{(\w+)}", text)) == set(re.findall(r"{(\w+)}", zh[key])), key


def test_the_chinese_catalog_is_chinese() -> None:
    """Every string that differs between the languages has Chinese characters in zh-CN (the
    few that are the same are names: the product, the language names)."""
    en, zh = catalog("en"), catalog("zh-CN")
    same = {k for k in en if en[k] == zh[k]}
    assert same <= {"product", "lang.en", "lang.zh-CN"}
    for key in set(en) - same:
        assert re.search(r"[\u4e00-\u9fff]", zh[key]), key


def test_every_key_used_exists() -> None:
    used: set[str] = set()
    for path in TEMPLATES.rglob("*.html"):
        used |= set(re.findall(r"""\bt\(\s*["']([\w.\-]+)["']""", path.read_text()))
    for path in STATIC.rglob("*.js"):
        used |= set(re.findall(r"""\bt\(\s*["']([\w.\-]+)["']""", path.read_text()))
    assert used, "no t() calls found"
    prefixes = {k for k in used if k.endswith(".")}  # built at run time: "status." + status
    used -= prefixes
    for prefix in prefixes:
        assert any(k.startswith(prefix) for k in catalog("en")), prefix
    assert used - set(catalog("en")) == set()


def test_templates_have_no_literal_text() -> None:
    """Between the tags, a template has only t(...) calls and expressions: any word written
    straight into the HTML would show untranslated."""
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text()
        text = re.sub(r"{#.*?#}|{%.*?%}|{{.*?}}", " ", text, flags=re.S)
        text = re.sub(r"<script\b.*?</script>|<style\b.*?</style>", " ", text, flags=re.S)
        text = re.sub(r"<[^>]*>", " ", text, flags=re.S)
        leftover = re.findall(r"[A-Za-z\u4e00-\u9fff]{2,}", text)
        assert leftover == [], f"{path.name}: {leftover}"


@pytest.mark.parametrize(("header", "cookie", "want"), [
    (None, None, "en"),
    ("", None, "en"),
    ("zh-CN,zh;q=0.9,en;q=0.8", None, "zh-CN"),
    ("zh", None, "zh-CN"),
    ("zh-TW", None, "zh-CN"),
    ("en-US,en;q=0.9,zh-CN;q=0.8", None, "en"),
    ("fr-FR,fr;q=0.9,zh-CN;q=0.5,en;q=0.4", None, "zh-CN"),  # first one we have, by weight
    ("en;q=0.2,zh-CN;q=0.9", None, "zh-CN"),
    ("de, ja", None, "en"),
    ("zh-CN;q=0, en", None, "en"),  # q=0 means "not this one"
    ("zh-CN", "en", "en"),  # the remembered choice wins
    ("en-US", "zh-CN", "zh-CN"),
    ("en-US", "klingon", "en"),  # an unknown cookie is ignored
    ("zh-CN;q=abc", None, "en"),
])
def test_negotiate(header: str | None, cookie: str | None, want: str) -> None:
    assert negotiate(header, cookie) == want


def test_region_guess() -> None:
    assert region_of("en-GB,en;q=0.9", "en") == "GB"
    assert region_of("zh-CN", "zh-CN") == "CN"
    assert region_of("en", "en") == "US"
    assert region_of(None, "zh-CN") == "CN"


def test_translate_fills_placeholders() -> None:
    assert translate("en", "expiry.days", n=30) == "In 30 days"
    assert translate("zh-CN", "expiry.days", n=30) == "30 天后"
    with pytest.raises(KeyError):
        translate("en", "no.such.key")


def test_countries_are_named_in_the_language() -> None:
    for lang in LANGUAGES:
        found = {c.region: c for c in countries(lang)}
        assert len(found) > 200
        assert found["GB"].calling_code == 44 and found["CN"].calling_code == 86
    assert {c.region: c.name for c in countries("en")}["GB"] == "United Kingdom"
    assert {c.region: c.name for c in countries("zh-CN")}["GB"] == "英国"
