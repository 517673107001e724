"""A receipt as a printable HTML page and as a PDF (fpdf2, core fonts only). Pure functions of
the receipt: no I/O, no clock, so the same receipt renders to the same bytes."""

from __future__ import annotations

import datetime as dt
from html import escape

from faregate.billing.receipts import Receipt
from faregate.kit.money import nano_to_usd

SELLER = "Faregate"
SIMULATED_NOTE = "Simulated payment (sandbox) — no money was charged"
NO_METHOD = "—"
_DESCRIPTION = "Prepaid credit"

_BRANDS = {"visa": "Visa", "mastercard": "Mastercard", "amex": "American Express",
           "discover": "Discover", "diners": "Diners Club", "jcb": "JCB",
           "unionpay": "UnionPay"}

# Core PDF fonts (Helvetica) cover latin-1 only: the usual typographic characters get a
# readable stand-in, anything else outside latin-1 becomes "?".
_LATIN1_STANDINS = str.maketrans({"•": "*", "—": "-", "–": "-", "‘": "'", "’": "'",
                                  "“": '"', "”": '"', "…": "...", "€": "EUR",
                                  "\u00a0": " "})


def format_usd(nano: int) -> str:
    """"$5.00", "$12.50", "-$1.00"; digits beyond cents only when they are not zero."""
    text = nano_to_usd(nano)
    sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
    whole, _, frac = digits.partition(".")
    return f"{sign}${whole}.{frac.ljust(2, '0')}"


def format_date(when: dt.datetime) -> str:
    """UTC, ISO-like: "2026-11-27 14:03:09 UTC"."""
    utc = when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%d %H:%M:%S UTC")


def payment_method(receipt: Receipt) -> str:
    """"Visa •••• 4242", or "—" when the payment names no card."""
    if not receipt.brand and not receipt.last4:
        return NO_METHOD
    brand = _BRANDS.get((receipt.brand or "").lower(), (receipt.brand or "Card").title())
    return f"{brand} •••• {receipt.last4}" if receipt.last4 else brand


def _rows(receipt: Receipt, organization_name: str) -> list[tuple[str, str]]:
    return [("Date", format_date(receipt.created_at)),
            ("Billed to", organization_name),
            ("Organization ID", receipt.organization_id),
            ("Description", _DESCRIPTION),
            ("Amount paid", format_usd(receipt.amount_nano)),
            ("Payment method", payment_method(receipt)),
            ("Payment ID", receipt.payment_id),
            ("Balance after payment", format_usd(receipt.balance_after_nano))]


_CSS = """
*{box-sizing:border-box}
body{margin:0;padding:2rem 1rem;background:#f4f4f5;color:#18181b;
font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
main{max-width:40rem;margin:0 auto;padding:2rem 2.25rem;background:#fff;
border:1px solid #e4e4e7;border-radius:8px}
header{display:flex;justify-content:space-between;align-items:baseline;gap:1rem;
border-bottom:2px solid #18181b;padding-bottom:.75rem;margin-bottom:1.25rem}
h1{margin:0;font-size:1.6rem}
.seller{margin:0;font-weight:600;font-size:1.1rem}
.simulated{margin:0 0 1.25rem;padding:.6rem .8rem;border:1px dashed #b45309;
background:#fffbeb;color:#92400e;font-weight:600}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.5rem 1.5rem;margin:0}
dt{color:#52525b}
dd{margin:0;overflow-wrap:anywhere}
dd.amount{font-weight:700;font-size:1.15rem}
code{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
footer{margin-top:1.75rem;color:#71717a;font-size:.85rem}
@media print{body{background:#fff;padding:0}main{border:0;border-radius:0;max-width:none}}
"""


def render_html(receipt: Receipt, *, organization_name: str, simulated: bool) -> str:
    """A self-contained printable page: inline CSS only, no scripts, every value escaped."""
    title = f"Receipt #{receipt.number}"
    items = []
    for label, value in _rows(receipt, organization_name):
        cls = ' class="amount"' if label == "Amount paid" else ""
        shown = escape(value)
        if label in ("Organization ID", "Payment ID"):
            shown = f"<code>{shown}</code>"
        items.append(f"<dt>{escape(label)}</dt><dd{cls}>{shown}</dd>")
    note = f'<p class="simulated">{escape(SIMULATED_NOTE)}</p>\n' if simulated else ""
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex">\n'
        f"<title>{escape(title)} · {SELLER}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f'<main>\n<header><h1>{escape(title)}</h1><p class="seller">{SELLER}</p></header>\n'
        f"{note}<dl>\n" + "\n".join(items) + "\n</dl>\n"
        f"<footer>Thank you. This receipt was issued by {SELLER} for a payment of prepaid "
        "credit.</footer>\n</main>\n</body>\n</html>\n")


def latin1(text: str) -> str:
    """Text the PDF core fonts can draw: stand-ins for common typography, "?" for the rest
    (CJK, emoji, control characters)."""
    out = []
    for ch in text.translate(_LATIN1_STANDINS):
        code = ord(ch)
        out.append(ch if 32 <= code < 127 or 160 <= code < 256 else "?")
    return "".join(out)


def render_pdf(receipt: Receipt, *, organization_name: str, simulated: bool,
               compress: bool = True) -> bytes:
    """One A4 page in Helvetica; deterministic (its creation date is the receipt's)."""
    from fpdf import FPDF  # fpdf2 (and PIL, fontTools) cost ~0.3 s to import: only when used
    from fpdf.enums import XPos, YPos

    pdf = FPDF(format="A4", unit="mm")
    pdf.set_compression(compress)
    pdf.set_creation_date(receipt.created_at if receipt.created_at.tzinfo
                          else receipt.created_at.replace(tzinfo=dt.UTC))
    pdf.set_title(f"Receipt #{receipt.number}")
    pdf.set_author(SELLER)
    pdf.set_creator(SELLER)
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(True, margin=20)
    pdf.add_page()
    width = pdf.epw

    pdf.set_font("Helvetica", "B", 22)
    pdf.cell(width / 2, 12, latin1(f"Receipt #{receipt.number}"))
    pdf.set_font("Helvetica", "B", 14)
    pdf.cell(width / 2, 12, SELLER, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_line_width(0.6)
    pdf.line(pdf.l_margin, pdf.get_y() + 1, pdf.l_margin + width, pdf.get_y() + 1)
    pdf.ln(7)

    if simulated:
        pdf.set_font("Helvetica", "B", 11)
        pdf.set_text_color(146, 64, 14)
        pdf.multi_cell(width, 7, latin1(SIMULATED_NOTE), border=1,
                       new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_text_color(0, 0, 0)
        pdf.ln(5)

    label_w = 50.0
    for label, value in _rows(receipt, organization_name):
        pdf.set_font("Helvetica", "", 11)
        pdf.set_text_color(82, 82, 91)
        pdf.cell(label_w, 8, latin1(label))
        pdf.set_text_color(0, 0, 0)
        pdf.set_font("Helvetica", "B" if label == "Amount paid" else "", 11)
        pdf.multi_cell(width - label_w, 8, latin1(value), align="L",
                       new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    pdf.ln(8)
    pdf.set_font("Helvetica", "", 9)
    pdf.set_text_color(113, 113, 122)
    pdf.multi_cell(width, 5, latin1(f"Thank you. This receipt was issued by {SELLER} for a "
                                    "payment of prepaid credit."),
                   new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())
