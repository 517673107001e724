"""The IP-to-country table read from CSV files in the "IP to country lite" form: IPv4 and
IPv6, a header, quotes, integers, unknown codes, merged neighbours, refused rows, and a file
that changes on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from faregate.billing.ipcountry import load, table_for

LITE = '''start_ip,end_ip,country_code
1.0.0.0,1.0.0.255,AU
"1.0.1.0","1.0.3.255","CN"
1.0.4.0,1.0.7.255,AU
1.0.8.0,1.0.8.255,AU
10.0.0.0,10.255.255.255,ZZ
203.0.113.0,203.0.113.255,us
2001:200::,2001:200:ffff:ffff:ffff:ffff:ffff:ffff,JP
2001:db8::,2001:db8:0:ffff:ffff:ffff:ffff:ffff,FR
'''


def _write(tmp_path: Path, text: str, name: str = "ip.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_lookups(tmp_path: Path) -> None:
    table = load(_write(tmp_path, LITE))
    assert table.country_of("1.0.0.0") == "AU" and table.country_of("1.0.0.255") == "AU"
    assert table.country_of("1.0.2.9") == "CN"
    assert table.country_of("1.0.4.0") == "AU" and table.country_of("1.0.8.255") == "AU"
    assert table.country_of("1.0.9.0") is None  # past the last range
    assert table.country_of("0.255.255.255") is None  # before the first
    assert table.country_of("10.1.2.3") is None  # ZZ: unknown
    assert table.country_of("203.0.113.77") == "US"  # codes upper-cased
    assert table.country_of("::ffff:203.0.113.77") == "US"  # IPv4-mapped
    assert table.country_of("2001:200:1::5") == "JP"
    assert table.country_of("[2001:db8::1]") == "FR"
    assert table.country_of("2001:db8:1::") is None
    assert table.country_of("127.0.0.1") is None and table.country_of("::1") is None
    assert table.country_of("not an address") is None and table.country_of("") is None
    assert len(table) == 6  # 1.0.4.0-1.0.8.255 merged into one AU range; ZZ left out


def test_integer_addresses_and_extra_columns(tmp_path: Path) -> None:
    table = load(_write(tmp_path, '"16777216","16777471","AU","Australia"\n'
                                  '"16777472","16778239","CN","China"\n'
                                  '"0","16777215","-","-"\n'))
    assert table.country_of("1.0.0.1") == "AU" and table.country_of("1.0.1.1") == "CN"
    assert table.country_of("0.0.0.1") is None


@pytest.mark.parametrize(("text", "message"), [
    ("start,end,cc\n1.0.0.0,1.0.0.255,AU\nbogus,row,XX\n", ":3: not a start_ip"),
    ("1.0.0.0,1.0.0.255,AU\n1.0.1.0,1.0.0.0,AU\n", ":2: not a start_ip"),  # end before start
    ("1.0.0.0,::1,AU\n1.0.0.0,1.0.0.255,AU\n", None),  # a first row that is no range: header
    ("1.0.0.0,1.0.0.255,Australia\n", "not a two-letter country code"),
])
def test_bad_rows_are_refused_with_their_line(tmp_path: Path, text: str,
                                              message: str | None) -> None:
    path = _write(tmp_path, text)
    if message is None:
        assert load(path).country_of("1.0.0.1") == "AU"
        return
    with pytest.raises(ValueError, match=message):
        load(path)


def test_read_once_and_again_when_changed(tmp_path: Path) -> None:
    path = _write(tmp_path, "1.0.0.0,1.0.0.255,AU\n")
    first = table_for(path)
    assert table_for(path) is first and first.country_of("1.0.0.1") == "AU"
    path.write_text("1.0.0.0,1.0.0.255,NZ\n")
    os.utime(path, ns=(1, 1))  # a different modification time, whatever the clock did
    assert table_for(path).country_of("1.0.0.1") == "NZ"
