"""The FastAPI application for everything that is not /v1: the /api JSON API (documented at
/openapi.json and /docs), the front page and the health check."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi_offline import FastAPIOffline
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from faregate.api import (
    admin_api,
    audit_routes,
    auth_routes,
    billing_routes,
    keys_routes,
    me_routes,
    orgs_routes,
    phone_routes,
    projects_routes,
    receipts_routes,
    tier_routes,
    usage_routes,
    webhook_routes,
)
from faregate.api.deps import csrf_guard
from faregate.db.outage import UNAVAILABLE
from faregate.errors import DatabaseUnavailable, FaregateError

_TAGS = [
    {"name": "auth", "description": "Sign up, sign in, email verification, password reset."},
    {"name": "me", "description": "The signed-in user."},
    {"name": "phone", "description": "Phone verification by SMS code."},
    {"name": "organizations", "description": "Organizations, members and invitations."},
    {"name": "projects", "description": "Projects group API keys within an organization."},
    {"name": "api-keys", "description": "Create, list, rename and revoke API keys."},
    {"name": "audit", "description": "The organization's audit trail."},
    {"name": "billing", "description": "Payment methods, top-ups, auto-recharge, credit "
     "history."},
    {"name": "usage", "description": "Usage and costs for the dashboard: series, summary, "
     "CSV, live feed."},
    {"name": "webhooks", "description": "Events from the payment processor."},
    {"name": admin_api.TAG, "description": admin_api.TAG_DESCRIPTION},
]


log = logging.getLogger("faregate.api")

def _error(status: int, message: str, *, code: str | None, param: str | None = None,
           type_: str = "invalid_request_error",
           headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type_, "param": param,
                                   "code": code}}, status_code=status, headers=headers)


async def _faregate_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FaregateError)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers or None)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable: %s", type(exc).__name__)
    return await _faregate_error(request, DatabaseUnavailable())


async def _out_of_range(request: Request, exc: Exception) -> JSONResponse:
    """A value from the request the database cannot hold: an id or cursor past 64 bits, a
    time before the year 1 in UTC. Any other statement error is a bug (500)."""
    if isinstance(exc, sa_exc.StatementError) and not isinstance(exc, sa_exc.DataError) \
            and not isinstance(exc.orig, OverflowError):
        raise exc
    log.warning("out-of-range value in %s %s: %s", request.method, request.url.path,
                type(exc).__name__)
    return _error(400, "A value in the request is out of range.", code="invalid_value")


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = [str(x) for x in first.get("loc", ()) if x not in ("body", "query", "path")]
    param = ".".join(loc) or None
    msg = str(first.get("msg", "Invalid request."))
    message = f"{param}: {msg}" if param else msg
    return _error(400, message, code="invalid_value", param=param)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    return _error(exc.status_code, str(exc.detail), code=code,
                  headers=dict(exc.headers) if exc.headers else None)


def create_web(lifespan: Callable[[Any], AbstractAsyncContextManager[None]],
               extra: list[APIRouter]) -> FastAPI:
    # /docs with Swagger UI served by Faregate itself (no CDN: Faregate runs offline).
    app = FastAPIOffline(docs_url="/docs", redoc_url=None, static_url="/static/docs",
                         title="Faregate API", version="0.1.0", openapi_tags=_TAGS,
                         description="The JSON API behind Faregate's dashboard. Browsers "
                         "authenticate "
                         "with the session cookie set by sign-in; every state-changing request "
                         "carries the CSRF token (the `fg_csrf` cookie) in `X-CSRF-Token`.",
                         lifespan=lifespan)
    app.add_exception_handler(FaregateError, _faregate_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    for outage in UNAVAILABLE:
        app.add_exception_handler(outage, _database_unavailable)
    for out_of_range in (OverflowError, sa_exc.StatementError):  # found by tests/hardening
        app.add_exception_handler(out_of_range, _out_of_range)
    api = APIRouter(prefix="/api", dependencies=[Depends(csrf_guard)])
    api.include_router(auth_routes.router, tags=["auth"])
    api.include_router(me_routes.router, tags=["me"])
    api.include_router(phone_routes.router, tags=["phone"])
    api.include_router(orgs_routes.router, tags=["organizations"])
    api.include_router(projects_routes.router, tags=["projects"])
    api.include_router(keys_routes.router, tags=["api-keys"])
    api.include_router(audit_routes.router, tags=["audit"])
    api.include_router(billing_routes.router, tags=["billing"])
    api.include_router(receipts_routes.router, tags=["billing"])
    api.include_router(usage_routes.router, tags=["usage"])
    api.include_router(tier_routes.router, tags=["organizations"])
    app.include_router(api)
    app.include_router(admin_api.router())
    app.include_router(webhook_routes.router)
    for router in extra:
        app.include_router(router)
    return app
