"""The operator console's JSON API, /admin/api: its own sessions (cookie path /admin), its own
CSRF token; user sessions do not work here, nor operator sessions on /api."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from faregate.api import (
    admin_auth_routes,
    admin_console_actions,
    admin_console_routes,
    admin_model_routes,
    admin_operator_routes,
    admin_tier_routes,
    admin_upstream_routes,
)
from faregate.api.admin_deps import admin_csrf_guard

TAG = "operator console"
TAG_DESCRIPTION = ("The operator console (/admin/api): operator sign-in with password and "
                   "TOTP, operators and their roles. Cookie `fg_admin_session`, CSRF token "
                   "`fg_admin_csrf` in `X-CSRF-Token`.")


def router() -> APIRouter:
    api = APIRouter(prefix="/admin/api", dependencies=[Depends(admin_csrf_guard)])
    api.include_router(admin_auth_routes.router, tags=[TAG])
    api.include_router(admin_operator_routes.router, tags=[TAG])
    api.include_router(admin_upstream_routes.router, tags=[TAG])
    api.include_router(admin_model_routes.router, tags=[TAG])
    api.include_router(admin_console_routes.router, tags=[TAG])
    api.include_router(admin_console_actions.router, tags=[TAG])
    api.include_router(admin_tier_routes.router, tags=[TAG])
    return api
