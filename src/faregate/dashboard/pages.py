"""The dashboard's page endpoints. Each page is a template rendered on the server in the
visitor's language; its script (static/app.js) then talks to the JSON API under /api.

The dashboard does not import faregate.api (a sibling layer): the app hands it `who`, which
says who is signed in (or None) for a request."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from faregate.api_keys.scopes import SCOPES
from faregate.config import Settings
from faregate.dashboard.countries import countries
from faregate.dashboard.i18n import (
    LANG_COOKIE,
    LANGUAGES,
    catalog,
    negotiate,
    region_of,
    translate,
)
from faregate.identity.sessions import SessionUser

Who = Callable[[Request], Awaitable[SessionUser | None]]

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
STATIC_PREFIX = "/static/app"

# No inline script or style anywhere: everything comes from our own origin.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "font-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
       "base-uri 'none'; object-src 'none'")
# In `stripe` mode the card form is Stripe's (Elements): Stripe.js must come from Stripe, its
# fields are Stripe's frames, and it talks to Stripe's API (Stripe's published CSP needs).
STRIPE_JS = "https://js.stripe.com/v3/"
STRIPE_CSP = ("default-src 'self'; script-src 'self' https://js.stripe.com; style-src 'self'; "
              "img-src 'self' data: https://*.stripe.com; font-src 'self'; "
              "connect-src 'self' https://api.stripe.com; "
              "frame-src https://js.stripe.com https://hooks.stripe.com; "
              "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the verify and reset links carry a token
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True, slots=True)
class Page:
    path: str
    template: str
    title: str  # catalog key
    signed_in: bool  # only for signed-in users (others go to /signin)
    nav: str | None = None  # catalog key of its entry in the app navigation
    script: str | None = None  # its own script, static/pages/<script> (after app.js)


PAGES = (
    Page("/signin", "signin.html", "signin.title", False),
    Page("/signup", "signup.html", "signup.title", False),
    Page("/verify-email", "verify_email.html", "verify.title", False),
    Page("/forgot-password", "forgot_password.html", "forgot.title", False),
    Page("/reset-password", "reset_password.html", "reset.title", False),
    Page("/keys", "keys.html", "keys.title", True, "nav.keys"),
    Page("/billing", "billing.html", "billing.title", True, "nav.billing", script="billing.js"),
    Page("/usage", "usage.html", "usage.title", True, "nav.usage", script="usage.js"),
    Page("/limits", "limits.html", "limits.title", True, "nav.limits", script="account.js"),
    Page("/organization", "organization.html", "org.title", True, "nav.organization",
         script="account.js"),
    Page("/settings", "settings.html", "settings.title", True, "nav.settings",
         script="account.js"),
    Page("/phone", "phone.html", "phone.title", True),
)
NAV = [p for p in PAGES if p.nav]


def safe_next(value: str | None) -> str:
    """A same-site path to go to after signing in (never another site)."""
    if value and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return "/keys"


def _asset_versions() -> dict[str, str]:
    return {f.relative_to(STATIC_DIR).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()[:12]
            for f in STATIC_DIR.rglob("*") if f.is_file()}


class Dashboard:
    def __init__(self, settings: Settings, who: Who) -> None:
        self.settings = settings
        self.who = who
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"),
                               autoescape=select_autoescape(default=True),
                               trim_blocks=True, lstrip_blocks=True)
        self.versions = _asset_versions()
        self.stripe = settings.payments_processor == "stripe"
        self.headers = {**SECURITY_HEADERS, "Content-Security-Policy": STRIPE_CSP} \
            if self.stripe else SECURITY_HEADERS

    def static(self, name: str) -> str:
        return f"{STATIC_PREFIX}/{name}?v={self.versions.get(name, '0')}"

    def render(self, request: Request, page: Page, user: SessionUser | None,
               **extra: Any) -> Response:
        accept = request.headers.get("accept-language")
        # The remembered choice: this browser's cookie, else the signed-in user's setting.
        chosen = request.cookies.get(LANG_COOKIE) or (user.locale if user else None)
        lang = negotiate(accept, chosen)

        def t(key: str, **values: Any) -> str:
            return translate(lang, key, **values)

        context = {
            "lang": lang, "t": t, "page": page, "nav": NAV, "user": user,
            "languages": LANGUAGES, "static": self.static, "messages": catalog(lang),
            "sandbox": self.settings.payments_processor == "sandbox",
            "path": request.url.path, "api_base": f"{request.base_url}v1",
            "here": quote(request.url.path, safe="/"),
            "countries": countries(lang), "region": region_of(accept, lang),
            "scopes": list(SCOPES), "password_min": self.settings.password_min_length,
            "stripe_js": STRIPE_JS if self.stripe and page.path == "/billing" else None,
            **extra,
        }
        body = self.env.get_template(page.template).render(context)
        return HTMLResponse(body, headers=self.headers)

    def endpoint(self, page: Page) -> Callable[[Request], Awaitable[Response]]:
        async def show(request: Request) -> Response:
            user = await self.who(request)
            if page.signed_in and user is None:
                return RedirectResponse(f"/signin?next={quote(page.path)}", status_code=303)
            nxt = safe_next(request.query_params.get("next"))
            return self.render(request, page, user, next=nxt)
        show.__name__ = "page_" + page.path.strip("/").replace("-", "_")
        return show

    async def home(self, request: Request) -> Response:
        user = await self.who(request)
        if user is not None:
            return RedirectResponse("/keys", status_code=303)
        return self.render(request, Page("/", "home.html", "home.title", False), None)

    async def switch_language(self, request: Request, lang: str) -> Response:
        """Remember the chosen language (a cookie, for a year) and go back to the page."""
        response = RedirectResponse(safe_next(request.query_params.get("next")),
                                    status_code=303)
        if lang in LANGUAGES:
            response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, path="/",
                                samesite="lax")
        return response

    def router(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)
        router.add_api_route("/", self.home, methods=["GET"])
        router.add_api_route("/lang/{lang}", self.switch_language, methods=["GET"])
        for page in PAGES:
            router.add_api_route(page.path, self.endpoint(page), methods=["GET"])
        return router


def mount_dashboard(app: FastAPI, settings: Settings, who: Who) -> Dashboard:
    """Add the pages and their static files (served by Faregate itself: no CDN) to `app`."""
    from faregate.dashboard.admin_pages import admin_router  # it imports this module

    dashboard = Dashboard(settings, who)
    app.include_router(dashboard.router())
    app.include_router(admin_router(dashboard))
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="dashboard-static")
    return dashboard
