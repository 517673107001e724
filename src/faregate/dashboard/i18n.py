"""Languages, message catalogs and the choice of language for a request.

Every visible string lives in locales/<lang>.json under a key; templates call t(key) and the
page's script reads the same catalog (embedded as a JSON data block). The first visit follows
Accept-Language; the language switcher stores the choice in the `fg_lang` cookie."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

LANGUAGES = ("en", "zh-CN")
DEFAULT = "en"
LANG_COOKIE = "fg_lang"
LOCALES_DIR = Path(__file__).parent / "locales"


@cache
def catalog(lang: str) -> dict[str, str]:
    """locales/<lang>.json plus every locales/<lang>/*.json (one file per page or area); a key
    defined twice is a bug."""
    files = [LOCALES_DIR / f"{lang}.json", *sorted((LOCALES_DIR / lang).glob("*.json"))]
    data: dict[str, str] = {}
    for path in files:
        part: dict[str, str] = json.loads(path.read_text("utf-8"))
        twice = data.keys() & part.keys()
        if twice:
            raise ValueError(f"{path}: keys already defined: {sorted(twice)}")
        data.update(part)
    return data


def translate(lang: str, key: str, **values: Any) -> str:
    """The message `key` in `lang` ({name} placeholders filled); a missing key is a bug and
    raises KeyError (the catalog test keeps both languages complete)."""
    text = catalog(lang)[key]
    return text.format(**values) if values else text


def _tags(accept_language: str) -> list[str]:
    """The language tags of an Accept-Language header, most preferred first."""
    weighted: list[tuple[float, int, str]] = []
    for i, part in enumerate(accept_language.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        if tag and q > 0:
            weighted.append((-q, i, tag.strip()))
    return [tag for _, _, tag in sorted(weighted)]


def language_of(tag: str) -> str | None:
    """Our language for a BCP 47 tag: any Chinese reads best in zh-CN, any English in en."""
    low = tag.lower()
    if low == "zh" or low.startswith("zh-"):
        return "zh-CN"
    if low == "en" or low.startswith("en-"):
        return "en"
    return None


def negotiate(accept_language: str | None, cookie: str | None) -> str:
    """The language for a request: the remembered choice, else the browser's first language
    we have, else English."""
    if cookie in LANGUAGES:
        return str(cookie)
    for tag in _tags(accept_language or ""):
        lang = language_of(tag)
        if lang is not None:
            return lang
    return DEFAULT


def region_of(accept_language: str | None, lang: str) -> str:
    """A guess at the visitor's country for the phone picker: the region of their first
    language tag that names one (en-GB -> GB), else the usual one for the language."""
    for tag in _tags(accept_language or ""):
        parts = tag.replace("_", "-").split("-")
        for part in parts[1:]:
            if len(part) == 2 and part.isalpha():
                return part.upper()
    return "CN" if lang == "zh-CN" else "US"
