"""The country picker's options: every region phonenumbers knows, with its calling code and
its name in the page's language (from phonenumbers' own geocoding data)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import phonenumbers


@dataclass(frozen=True, slots=True)
class Country:
    region: str
    name: str
    calling_code: int


@cache
def countries(lang: str) -> tuple[Country, ...]:
    # Imported on first use: the geocoding data takes ~0.4 s to load, which every server start
    # (and every test that starts one) would otherwise pay.
    from phonenumbers import geocoder

    geo_lang = "zh" if lang.startswith("zh") else "en"
    out: list[Country] = []
    for region in phonenumbers.SUPPORTED_REGIONS:
        example = phonenumbers.example_number(region)
        name = geocoder.country_name_for_number(example, geo_lang) if example else ""
        out.append(Country(region, name or region, phonenumbers.country_code_for_region(region)))
    return tuple(sorted(out, key=lambda c: (c.name.casefold(), c.region)))
