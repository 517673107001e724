"""The operator console's cookies, apart from the users' (api/security.py): the session in
`fg_admin_session` (HttpOnly, SameSite=Strict, Path=/admin, Secure over HTTPS) and a CSRF token
in `fg_admin_csrf`, the same signed double-submit design as the users' but bound to the
operator session (a user's token does not verify here, nor the other way round)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from faregate.api.context import ApiContext
from faregate.api.security import csrf_token, csrf_valid, secure_cookies

ADMIN_SESSION_COOKIE = "fg_admin_session"
ADMIN_CSRF_COOKIE = "fg_admin_csrf"
ADMIN_PATH = "/admin"


def _bound(session_id: str) -> str:
    return f"operator:{session_id}"


def admin_csrf_token(secret: bytes, session_id: str) -> str:
    return csrf_token(secret, _bound(session_id))


def admin_csrf_valid(token: str, secret: bytes, session_id: str) -> bool:
    return csrf_valid(token, secret, _bound(session_id))


def set_admin_csrf_cookie(response: Response, request: Request, ctx: ApiContext,
                          session_id: str) -> str:
    token = admin_csrf_token(ctx.session_secret, session_id)
    response.set_cookie(ADMIN_CSRF_COOKIE, token, max_age=ctx.settings.operator_session_ttl_s,
                        path=ADMIN_PATH, secure=secure_cookies(request, ctx), httponly=False,
                        samesite="strict")
    return token


def set_admin_session_cookies(response: Response, request: Request, ctx: ApiContext, *,
                              session_id: str, token: str) -> str:
    """After sign-in: the session cookie and a CSRF token bound to it (returned)."""
    response.set_cookie(ADMIN_SESSION_COOKIE, token,
                        max_age=ctx.settings.operator_session_ttl_s, path=ADMIN_PATH,
                        secure=secure_cookies(request, ctx), httponly=True, samesite="strict")
    return set_admin_csrf_cookie(response, request, ctx, session_id)


def clear_admin_session_cookies(response: Response, request: Request, ctx: ApiContext) -> str:
    """After sign-out: no session; a fresh anonymous CSRF token (returned)."""
    response.delete_cookie(ADMIN_SESSION_COOKIE, path=ADMIN_PATH,
                           secure=secure_cookies(request, ctx), httponly=True,
                           samesite="strict")
    return set_admin_csrf_cookie(response, request, ctx, "")
