"""FastAPI dependencies of the operator console's API (/admin/api): the signed-in operator,
role checks and CSRF.

Routes take `CurrentOperator` (any role: reads) or `AdminOperator` (admins only: every
change), or list `Depends(require_admin)` in `dependencies=`."""

from __future__ import annotations

import hmac
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends
from starlette.requests import Request

from faregate.api.admin_security import ADMIN_CSRF_COOKIE, ADMIN_SESSION_COOKIE, admin_csrf_valid
from faregate.api.context import ApiContext
from faregate.api.deps import Ctx
from faregate.api.security import CSRF_HEADER
from faregate.errors import AuthenticationFailed, PermissionDenied
from faregate.kit.crypto import Cipher
from faregate.kit.netinfo import is_https
from faregate.operators import sessions
from faregate.operators.rules import OperatorRules
from faregate.operators.sessions import OperatorPrincipal

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_NO_SESSION = object()


async def optional_operator(request: Request, ctx: Ctx) -> OperatorPrincipal | None:
    cached = getattr(request.state, "operator", _NO_SESSION)
    if cached is not _NO_SESSION:
        assert cached is None or isinstance(cached, OperatorPrincipal)
        return cached
    token = request.cookies.get(ADMIN_SESSION_COOKIE)
    found: OperatorPrincipal | None = None
    if token:
        secret, idle_s = ctx.session_secret, ctx.settings.operator_session_idle_s

        def run(conn: sa.Connection) -> OperatorPrincipal | None:
            return sessions.authenticate(conn, token, secret=secret, idle_s=idle_s)
        found = await ctx.db.run(run)
    request.state.operator = found
    return found


MaybeOperator = Annotated[OperatorPrincipal | None, Depends(optional_operator)]


async def require_operator(operator: MaybeOperator) -> OperatorPrincipal:
    """Any signed-in operator (admin or support)."""
    if operator is None:
        raise AuthenticationFailed("You are not signed in to the operator console, or your "
                                   "session has ended. Please sign in.", code="not_signed_in")
    return operator


CurrentOperator = Annotated[OperatorPrincipal, Depends(require_operator)]


async def require_admin(operator: CurrentOperator) -> OperatorPrincipal:
    """A signed-in admin; support operators get 403 admin_required."""
    if not operator.is_admin:
        raise PermissionDenied("Only an admin operator can do this; your role (support) is "
                               "read-only.", code="admin_required")
    return operator


AdminOperator = Annotated[OperatorPrincipal, Depends(require_admin)]


def get_rules(ctx: Ctx) -> OperatorRules:
    return OperatorRules.from_settings(ctx.settings)


Rules = Annotated[OperatorRules, Depends(get_rules)]


def get_cipher(ctx: Ctx) -> Cipher:
    """Encrypts TOTP secrets with the server's encryption key (as upstream API keys are)."""
    return Cipher(ctx.settings.secret("encryption_key"))


SecretCipher = Annotated[Cipher, Depends(get_cipher)]


def _own_origins(request: Request, ctx: ApiContext) -> set[str]:
    scheme = "https" if is_https(request.scope, tuple(ctx.settings.trusted_proxies)) else "http"
    origins = {ctx.settings.resolved_public_url}
    host = request.headers.get("host")
    if host:
        origins.add(f"{scheme}://{host}")
    return origins


async def admin_csrf_guard(request: Request, ctx: Ctx, operator: MaybeOperator) -> None:
    """Refuse a state-changing request that does not prove it came from the console."""
    if request.method in _SAFE_METHODS:
        return
    origin = request.headers.get("origin")
    if origin and origin != "null" and origin not in _own_origins(request, ctx):
        raise PermissionDenied("Cross-site request refused.", code="csrf_failed")
    header = request.headers.get(CSRF_HEADER, "")
    cookie = request.cookies.get(ADMIN_CSRF_COOKIE, "")
    session_id = operator.session_id if operator is not None else ""
    if (not header or not hmac.compare_digest(header, cookie)
            or not admin_csrf_valid(header, ctx.session_secret, session_id)):
        raise PermissionDenied("Missing or invalid CSRF token: reload the page and try again. "
                               "(Send the fg_admin_csrf cookie's value in the X-CSRF-Token "
                               "header; GET /admin/api/auth/csrf issues one.)",
                               code="csrf_failed")
