"""The operator console's web pages (/admin): server-rendered shells in the dashboard's look
and languages, filled by static/pages/admin.js from the JSON API under /admin/api. The pages
hold nothing secret: an operator who is not signed in gets the sign-in page from the script
(the API answers 401), and what a support operator may not do is refused by the API (the
script also hides the forms)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from faregate.dashboard.pages import Dashboard, Page, safe_next

SCRIPT = "admin.js"
SIGNIN = Page("/admin/signin", "admin/signin.html", "admin.signin.title", False, script=SCRIPT)
PAGES = (
    Page("/admin", "admin/search.html", "admin.search.title", False, "admin.nav.search",
         script=SCRIPT),
    Page("/admin/models", "admin/models.html", "admin.models.title", False, "admin.nav.models",
         script=SCRIPT),
    Page("/admin/upstreams", "admin/upstreams.html", "admin.upstreams.title", False,
         "admin.nav.upstreams", script=SCRIPT),
    Page("/admin/audit", "admin/audit.html", "admin.audit.title", False, "admin.nav.audit",
         script=SCRIPT),
)
ORG = Page("/admin/orgs/{org_id}", "admin/org.html", "admin.org.title", False, script=SCRIPT)


def _name(page: Page) -> str:
    """The script's page key: admin/search.html -> admin_search."""
    return page.template[:-5].replace("/", "_")


def admin_router(dashboard: Dashboard) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def endpoint(page: Page) -> Callable[[Request], Awaitable[Response]]:
        async def show(request: Request) -> Response:
            nxt = request.query_params.get("next")
            return dashboard.render(
                request, page, None, admin_page=_name(page), admin_nav=PAGES,
                next=safe_next(nxt) if nxt and nxt.startswith("/admin") else "/admin",
                org_id=request.path_params.get("org_id", ""))
        show.__name__ = "admin_page_" + _name(page)
        return show

    for page in (SIGNIN, *PAGES, ORG):
        router.add_api_route(page.path, endpoint(page), methods=["GET"])
    return router
