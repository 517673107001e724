"""An IP-to-country table from a CSV file in the widely distributed "IP to country lite" form
(DB-IP's dbip-country-lite, and others): one `start_ip,end_ip,country_code` row per range,
IPv4 and IPv6. A header row, quoted fields, extra columns after the code, and addresses given
as integers are tolerated; `ZZ` and `-` mean unknown.

The file is read once into sorted integer ranges (adjacent ranges of one country merged) and
looked up with bisect; it is read again only when it changes on disk."""

from __future__ import annotations

import csv
import logging
import os
import socket
from array import array
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

log = logging.getLogger("faregate.billing")

_UNKNOWN = {"", "ZZ", "-", "--", "XX"}
_V4_MAX = 2**32 - 1


@dataclass(frozen=True, slots=True)
class _Ranges:
    starts: array[int] | list[int]
    ends: array[int] | list[int]
    codes: list[str]

    def find(self, ip: int) -> str | None:
        i = bisect_right(self.starts, ip) - 1
        if i >= 0 and ip <= self.ends[i]:
            return self.codes[i]
        return None


@dataclass(frozen=True, slots=True)
class IpCountries:
    v4: _Ranges
    v6: _Ranges

    def country_of(self, ip: str) -> str | None:
        """The ISO 3166 code of the address's country, or None when the table does not
        know it (not listed, private, loopback, not an address)."""
        parsed = parse_ip(ip)
        if parsed is None:
            return None
        version, value = parsed
        return (self.v4 if version == 4 else self.v6).find(value)

    def __len__(self) -> int:
        return len(self.v4.codes) + len(self.v6.codes)


def parse_ip(text: str) -> tuple[int, int] | None:
    """(4 or 6, the address as an integer); an IPv4-mapped IPv6 address counts as IPv4."""
    text = text.strip().strip("[]")
    try:
        if ":" in text:
            value = int.from_bytes(socket.inet_pton(socket.AF_INET6, text.split("%")[0]), "big")
            if value >> 32 == 0xFFFF:
                return 4, value & _V4_MAX
            return 6, value
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except OSError:
        return None


def _endpoint(text: str) -> tuple[int, int] | None:
    text = text.strip()
    if text.isdigit():  # some lite files give addresses as integers
        value = int(text)
        return (4, value) if value <= _V4_MAX else (6, value) if value < 2**128 else None
    return parse_ip(text)


def _build(rows: list[tuple[int, int, str]], *, wide: bool) -> _Ranges:
    rows.sort()
    starts: list[int] = []
    ends: list[int] = []
    codes: list[str] = []
    for start, end, code in rows:
        if codes and codes[-1] == code and start <= ends[-1] + 1:  # adjacent or overlapping
            ends[-1] = max(ends[-1], end)
        elif ends and start <= ends[-1]:  # overlaps another country: keep the earlier range
            if end > ends[-1]:
                starts.append(ends[-1] + 1)
                ends.append(end)
                codes.append(code)
        else:
            starts.append(start)
            ends.append(end)
            codes.append(code)
    if wide:
        return _Ranges(starts, ends, codes)
    return _Ranges(array("L", starts), array("L", ends), codes)


def load(path: Path) -> IpCountries:
    """Read the CSV; a row that is not a range is refused with its line number, except a
    first row (a header)."""
    v4: list[tuple[int, int, str]] = []
    v6: list[tuple[int, int, str]] = []
    with path.open(newline="", encoding="utf-8-sig") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                continue
            start = _endpoint(row[0]) if len(row) >= 3 else None
            end = _endpoint(row[1]) if start is not None else None
            if start is None or end is None or start[0] != end[0] or start[1] > end[1]:
                if line == 1:
                    continue  # a header
                raise ValueError(f"{path}:{line}: not a start_ip,end_ip,country_code row")
            code = row[2].strip().upper()
            if code in _UNKNOWN:
                continue
            if len(code) != 2 or not code.isalpha():
                raise ValueError(f"{path}:{line}: {row[2]!r} is not a two-letter country code")
            (v4 if start[0] == 4 else v6).append((start[1], end[1], code))
    table = IpCountries(_build(v4, wide=False), _build(v6, wide=True))
    log.info("IP-to-country table %s: %d ranges", path, len(table))
    return table


@lru_cache(maxsize=2)
def _cached(path: str, _mtime_ns: int, _size: int) -> IpCountries:
    return load(Path(path))


def table_for(path: Path) -> IpCountries:
    """The table of this file, read once (and again when the file changes)."""
    st = os.stat(path)
    return _cached(str(path), st.st_mtime_ns, st.st_size)
