"""Receipts through HTTP with the sandbox processor, on SQLite and PostgreSQL: a top-up makes
a numbered receipt (JSON, printable HTML, PDF download); a later one gets a higher number; a
refused payment makes none; another organization's user finds nothing, a member who is not
an owner is refused."""

from __future__ import annotations

from tests.billing.test_receipt_render import pdf_text
from tests.e2e.api_client import invited_member, verified_owner
from tests.e2e.test_billing_flow import _bind
from tests.harness import Deployment


def test_receipts(any_dep: Deployment) -> None:
    server = any_dep.start_server()
    c, org = verified_owner(any_dep, server.base_url)
    base = f"/api/orgs/{org}/receipts"
    assert c.get(base).json() == {"data": []}
    assert _bind(c, org, "4242424242424242").status_code == 201
    assert c.get(base).json() == {"data": []}  # the card check is not a payment
    r = c.post(f"/api/orgs/{org}/top-ups", {"amount_usd": "5"})
    assert r.status_code == 201, r.text

    receipts = c.get(base).json()["data"]
    assert len(receipts) == 1
    first = receipts[0]
    n = first["number"]
    assert isinstance(n, int) and n >= 1
    assert first["amount"] == {"usd": "5", "nano_usd": 5_000_000_000}
    assert first["balance_after"] == {"usd": "5", "nano_usd": 5_000_000_000}
    assert (first["brand"], first["last4"]) == ("visa", "4242")
    assert first["payment_id"]
    assert first["html_url"] == f"{base}/{n}/html"
    assert first["pdf_url"] == f"{base}/{n}/pdf"
    assert c.get(f"{base}/{n}").json() == first

    page = c.get(first["html_url"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f"Receipt #{n}" in page.text and "$5.00" in page.text
    assert "Visa •••• 4242" in page.text and first["payment_id"] in page.text
    assert "Simulated payment (sandbox)" in page.text
    assert "no-store" in page.headers["cache-control"]
    assert "default-src 'none'" in page.headers["content-security-policy"]

    pdf = c.get(first["pdf_url"])
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == \
        f'attachment; filename="faregate-receipt-{n}.pdf"'
    assert pdf.content.startswith(b"%PDF")
    text = pdf_text(pdf.content)
    assert f"Receipt #{n}".encode() in text and b"($5.00)" in text

    # Not found: another number, another organization's user; refused: a plain member.
    assert c.get(f"{base}/{n + 1000}").status_code == 404
    assert c.get(f"{base}/{n + 1000}/pdf").status_code == 404
    assert c.get(f"{base}/0").status_code == 400
    outsider, outsider_org = verified_owner(any_dep, server.base_url)
    for path in (base, f"{base}/{n}", f"{base}/{n}/html", f"{base}/{n}/pdf"):
        r = outsider.get(path)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error"]["code"] == "organization_not_found"
    assert outsider.get(f"/api/orgs/{outsider_org}/receipts/{n}").status_code == 404
    member = invited_member(any_dep, c, org)
    for path in (base, f"{base}/{n}", f"{base}/{n}/html", f"{base}/{n}/pdf"):
        r = member.get(path)
        assert r.status_code == 403, (path, r.text)
        assert r.json()["error"]["code"] == "owner_required"

    # A second payment: a higher number, listed first.
    assert c.post(f"/api/orgs/{org}/top-ups", {"amount_usd": "6.50"}).status_code == 201
    receipts = c.get(base).json()["data"]
    assert [x["number"] for x in receipts][1:] == [n] and receipts[0]["number"] > n
    assert receipts[0]["amount"]["usd"] == "6.5" and receipts[0]["balance_after"]["usd"] == \
        "11.5"
    assert "$6.50" in c.get(receipts[0]["html_url"]).text

    # A refused payment makes no receipt.
    failing = _bind(c, org, "4000000000000341")  # attaches; its charges fail
    assert failing.status_code == 201, failing.text
    r = c.post(f"/api/orgs/{org}/top-ups",
               {"amount_usd": "5", "payment_method_id": failing.json()["id"]})
    assert r.status_code == 402, r.text
    assert c.get(base).json()["data"] == receipts
    assert any_dep.verify() == []
