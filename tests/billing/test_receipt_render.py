"""Receipts rendered: the HTML page escapes what it shows and carries the number, amount and
card; the PDF is a PDF, shows the same facts in latin-1 stand-ins, survives names its core
font cannot draw, and is the same bytes every time (its dates are the receipt's)."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import zlib

import pytest

from faregate.billing.receipt_render import (
    format_usd,
    latin1,
    payment_method,
    render_html,
    render_pdf,
)
from faregate.billing.receipts import Receipt

WHEN = dt.datetime(2026, 11, 27, 14, 3, 9, tzinfo=dt.UTC)
HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'


def _receipt(**kw: object) -> Receipt:
    base: dict[str, object] = dict(
        number=42, organization_id="org_abc", processor="sandbox", payment_id="pi_sbx_123",
        amount_nano=5_000_000_000, brand="visa", last4="4242",
        balance_after_nano=12_500_000_000, created_at=WHEN)
    base.update(kw)
    return Receipt(**base)  # type: ignore[arg-type]


def pdf_text(pdf: bytes) -> bytes:
    """The PDF's content, its Flate streams inflated."""
    parts = [pdf]
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        with contextlib.suppress(zlib.error):  # not a Flate stream
            parts.append(zlib.decompress(m.group(1)))
    return b"\n".join(parts)


@pytest.mark.parametrize(("nano", "text"), [
    (5_000_000_000, "$5.00"), (12_500_000_000, "$12.50"), (1_230_000_000, "$1.23"),
    (0, "$0.00"), (1, "$0.000000001"), (1_234_500_000, "$1.2345"),
    (-1_000_000_000, "-$1.00"), (100_000_000_000_000, "$100000.00")])
def test_format_usd(nano: int, text: str) -> None:
    assert format_usd(nano) == text


def test_payment_method() -> None:
    assert payment_method(_receipt()) == "Visa •••• 4242"
    assert payment_method(_receipt(brand="amex", last4="0005")) == "American Express •••• 0005"
    assert payment_method(_receipt(brand=None, last4=None)) == "—"


def test_html_escapes_and_shows_the_facts() -> None:
    page = render_html(_receipt(), organization_name=HOSTILE, simulated=False)
    assert "<script" not in page and "<img" not in page and "onerror=alert(1)>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img" in page
    assert "<title>Receipt #42" in page and "Receipt #42</h1>" in page
    assert "Faregate" in page and "2026-11-27 14:03:09 UTC" in page
    assert "$5.00" in page and "$12.50" in page and "Visa •••• 4242" in page
    assert "pi_sbx_123" in page
    assert "Simulated" not in page
    # self-contained: nothing loaded from elsewhere, no script
    assert not re.search(r"<(script|link|img|iframe|object)\b|@import|url\(|https?:", page, re.I)


def test_html_says_when_the_payment_was_simulated() -> None:
    page = render_html(_receipt(brand=None, last4=None), organization_name="Acme",
                       simulated=True)
    assert "Simulated payment (sandbox) — no money was charged" in page
    assert "<dd>—</dd>" in page


def test_pdf_shows_the_facts() -> None:
    for compress in (True, False):
        pdf = render_pdf(_receipt(), organization_name="Acme (UK) Ltd", simulated=True,
                         compress=compress)
        assert pdf.startswith(b"%PDF")
        text = pdf_text(pdf)
        for shown in (b"Receipt #42", b"Faregate", b"($5.00)", b"($12.50)",
                      b"(Visa **** 4242)", b"pi_sbx_123", b"2026-11-27 14:03:09 UTC",
                      b"Acme \\(UK\\) Ltd",
                      b"Simulated payment \\(sandbox\\) - no money was charged"):
            assert shown in text, shown
    assert b"/Title (Receipt #42)" in pdf
    assert b"/CreationDate (D:20261127140309Z" in pdf


def test_pdf_survives_names_core_fonts_cannot_draw() -> None:
    name = "株式会社テスト — Ünïcode 🚀 " + "x" * 400
    pdf = render_pdf(_receipt(), organization_name=name, simulated=False, compress=False)
    assert pdf.startswith(b"%PDF") and pdf.rstrip().endswith(b"%%EOF")
    assert b"(??????? - \xdcn\xefcode ?" in pdf
    assert b"Simulated" not in pdf


def test_latin1() -> None:
    assert latin1("Visa •••• 4242 — “ok”") == 'Visa **** 4242 - "ok"'
    assert latin1("Café 東京\x00\x85") == "Café ????"


def test_pdf_is_deterministic() -> None:
    a = render_pdf(_receipt(), organization_name="Acme", simulated=True)
    b = render_pdf(_receipt(), organization_name="Acme", simulated=True)
    assert a == b
    assert render_pdf(_receipt(number=43), organization_name="Acme", simulated=True) != a
