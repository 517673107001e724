"""/api endpoints: an organization's receipts, as JSON, as a printable HTML page and as a PDF.
For owners (a non-member gets 404, a member 403)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from faregate.api.billing_routes import Money
from faregate.api.deps import Ctx, CurrentUser
from faregate.billing.receipt_render import render_html, render_pdf
from faregate.billing.receipts import Receipt, get_receipt, list_receipts
from faregate.identity.access import require_owner
from faregate.identity.orgs import get_org
from faregate.kit.money import nano_to_usd

router = APIRouter()

Number = Annotated[int, Path(ge=1, le=2**31 - 1, description="The receipt's number.")]

# A receipt is private: never cached by a shared cache; the page may not run or load anything.
_PRIVATE = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}
_PAGE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; "
             "base-uri 'none'; form-action 'none'; frame-ancestors 'self'")


class ReceiptOut(BaseModel):
    number: int
    created_at: dt.datetime
    amount: Money
    brand: str | None = Field(description='The card\'s brand ("visa"), when a card paid.')
    last4: str | None
    payment_id: str = Field(description="The processor's payment id.")
    balance_after: Money = Field(description="The organization's balance after the credit.")
    html_url: str = Field(description="The printable page.")
    pdf_url: str = Field(description="The PDF (a download).")


class ReceiptList(BaseModel):
    data: list[ReceiptOut]


def _money(nano: int) -> Money:
    return Money(usd=nano_to_usd(nano), nano_usd=nano)


def _out(request: Request, org_id: str, r: Receipt) -> ReceiptOut:
    def path(name: str) -> str:
        return request.url_for(name, org_id=org_id, number=str(r.number)).path
    return ReceiptOut(number=r.number, created_at=r.created_at, amount=_money(r.amount_nano),
                      brand=r.brand, last4=r.last4, payment_id=r.payment_id,
                      balance_after=_money(r.balance_after_nano),
                      html_url=path("receipt_html"), pdf_url=path("receipt_pdf"))


@dataclass(frozen=True, slots=True)
class _Printable:
    receipt: Receipt
    organization_name: str


async def _printable(ctx: Ctx, user_id: str, org_id: str, number: int) -> _Printable:
    def run(conn: sa.Connection) -> _Printable:
        require_owner(conn, org_id, user_id)
        receipt = get_receipt(conn, org_id, number)
        return _Printable(receipt, get_org(conn, org_id, user_id=user_id).name)
    return await ctx.db.run(run)


def _simulated(ctx: Ctx) -> bool:
    return ctx.payments.simulated if ctx.payments else False


@router.get("/orgs/{org_id}/receipts", response_model=ReceiptList,
            summary="Receipts, newest first (owner)")
async def get_receipts(org_id: str, ctx: Ctx, user: CurrentUser,
                       request: Request) -> ReceiptList:
    def run(conn: sa.Connection) -> list[Receipt]:
        require_owner(conn, org_id, user.user_id)
        return list_receipts(conn, org_id)
    return ReceiptList(data=[_out(request, org_id, r) for r in await ctx.db.run(run)])


@router.get("/orgs/{org_id}/receipts/{number}", response_model=ReceiptOut,
            summary="One receipt (owner)")
async def get_one_receipt(org_id: str, number: Number, ctx: Ctx, user: CurrentUser,
                          request: Request) -> ReceiptOut:
    def run(conn: sa.Connection) -> Receipt:
        require_owner(conn, org_id, user.user_id)
        return get_receipt(conn, org_id, number)
    return _out(request, org_id, await ctx.db.run(run))


@router.get("/orgs/{org_id}/receipts/{number}/html", response_class=HTMLResponse,
            name="receipt_html", summary="A receipt as a printable HTML page (owner)")
async def receipt_html(org_id: str, number: Number, ctx: Ctx,
                       user: CurrentUser) -> HTMLResponse:
    p = await _printable(ctx, user.user_id, org_id, number)
    page = render_html(p.receipt, organization_name=p.organization_name,
                       simulated=_simulated(ctx))
    return HTMLResponse(page, headers={**_PRIVATE, "Content-Security-Policy": _PAGE_CSP})


@router.get("/orgs/{org_id}/receipts/{number}/pdf", response_class=Response,
            name="receipt_pdf", summary="A receipt as a PDF download (owner)",
            responses={200: {"content": {"application/pdf": {}},
                             "description": "The PDF."}})
async def receipt_pdf(org_id: str, number: Number, ctx: Ctx, user: CurrentUser) -> Response:
    p = await _printable(ctx, user.user_id, org_id, number)
    pdf = await run_in_threadpool(render_pdf, p.receipt, organization_name=p.organization_name,
                                  simulated=_simulated(ctx))
    disposition = f'attachment; filename="faregate-receipt-{p.receipt.number}.pdf"'
    return Response(pdf, media_type="application/pdf",
                    headers={**_PRIVATE, "Content-Disposition": disposition})
