"""FastAPI dependencies shared by every /api endpoint: context, client, session, CSRF."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends
from starlette.requests import Request

from faregate.api.context import ApiContext
from faregate.api.security import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, csrf_valid
from faregate.errors import AuthenticationFailed, PermissionDenied
from faregate.identity import sessions
from faregate.identity.sessions import SessionUser
from faregate.kit.netinfo import client_ip, is_https

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_NO_SESSION = object()


def get_ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(get_ctx)]


@dataclass(frozen=True, slots=True)
class Client:
    ip: str
    user_agent: str | None


def get_client(request: Request, ctx: Ctx) -> Client:
    return Client(client_ip(request.scope, tuple(ctx.settings.trusted_proxies)),
                  request.headers.get("user-agent"))


ClientInfo = Annotated[Client, Depends(get_client)]


async def optional_session(request: Request, ctx: Ctx) -> SessionUser | None:
    cached = getattr(request.state, "session_user", _NO_SESSION)
    if cached is not _NO_SESSION:
        assert cached is None or isinstance(cached, SessionUser)
        return cached
    token = request.cookies.get(SESSION_COOKIE)
    found: SessionUser | None = None
    if token:
        secret, idle_s = ctx.session_secret, ctx.settings.session_idle_s

        def run(conn: sa.Connection) -> SessionUser | None:
            return sessions.authenticate(conn, token, secret=secret, idle_s=idle_s)
        found = await ctx.db.run(run)
    request.state.session_user = found
    return found


MaybeUser = Annotated[SessionUser | None, Depends(optional_session)]


async def require_session(user: MaybeUser) -> SessionUser:
    if user is None:
        raise AuthenticationFailed("You are not signed in, or your session has ended. "
                                   "Please sign in.", code="not_signed_in")
    return user


CurrentUser = Annotated[SessionUser, Depends(require_session)]


def _own_origins(request: Request, ctx: ApiContext) -> set[str]:
    scheme = "https" if is_https(request.scope, tuple(ctx.settings.trusted_proxies)) else "http"
    origins = {ctx.settings.resolved_public_url}
    host = request.headers.get("host")
    if host:
        origins.add(f"{scheme}://{host}")
    return origins


async def csrf_guard(request: Request, ctx: Ctx, user: MaybeUser) -> None:
    """Refuse a state-changing request that does not prove it came from our own pages."""
    if request.method in _SAFE_METHODS:
        return
    origin = request.headers.get("origin")
    if origin and origin != "null" and origin not in _own_origins(request, ctx):
        raise PermissionDenied("Cross-site request refused.", code="csrf_failed")
    header = request.headers.get(CSRF_HEADER, "")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    session_id = user.session_id if user is not None else ""
    if (not header or not hmac.compare_digest(header, cookie)
            or not csrf_valid(header, ctx.session_secret, session_id)):
        raise PermissionDenied("Missing or invalid CSRF token: reload the page and try again. "
                               "(Send the fg_csrf cookie's value in the X-CSRF-Token header; "
                               "GET /api/auth/csrf issues one.)", code="csrf_failed")
