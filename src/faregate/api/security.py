"""Session and CSRF cookies.

CSRF protection is a signed double-submit token: the `fg_csrf` cookie (readable by the page's
script) holds a random nonce signed together with the session id, and every state-changing
request must echo it in the `X-CSRF-Token` header. A cross-site page can neither read the cookie
nor set the header; a token from another session (or from before sign-in) does not verify. An
`Origin` header from another site is refused outright."""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response

from faregate.api.context import ApiContext
from faregate.kit.crypto import keyed_hash
from faregate.kit.netinfo import is_https

SESSION_COOKIE = "fg_session"
CSRF_COOKIE = "fg_csrf"
CSRF_HEADER = "x-csrf-token"


def csrf_token(secret: bytes, session_id: str) -> str:
    nonce = secrets.token_urlsafe(18)
    return f"{nonce}.{keyed_hash(secret, f'{session_id}:{nonce}', purpose='csrf')[:43]}"


def csrf_valid(token: str, secret: bytes, session_id: str) -> bool:
    nonce, _, signature = token.partition(".")
    if not nonce or not signature or len(token) > 200:
        return False
    expected = keyed_hash(secret, f"{session_id}:{nonce}", purpose="csrf")[:43]
    return hmac.compare_digest(signature, expected)


def secure_cookies(request: Request, ctx: ApiContext) -> bool:
    return is_https(request.scope, tuple(ctx.settings.trusted_proxies))


def set_csrf_cookie(response: Response, request: Request, ctx: ApiContext,
                    session_id: str) -> str:
    token = csrf_token(ctx.session_secret, session_id)
    response.set_cookie(CSRF_COOKIE, token, max_age=ctx.settings.session_ttl_s, path="/",
                        secure=secure_cookies(request, ctx), httponly=False, samesite="strict")
    return token


def set_session_cookies(response: Response, request: Request, ctx: ApiContext, *,
                        session_id: str, token: str) -> str:
    """After sign-in: the new session cookie and a CSRF token bound to it (returned)."""
    response.set_cookie(SESSION_COOKIE, token, max_age=ctx.settings.session_ttl_s, path="/",
                        secure=secure_cookies(request, ctx), httponly=True, samesite="lax")
    return set_csrf_cookie(response, request, ctx, session_id)


def clear_session_cookies(response: Response, request: Request, ctx: ApiContext) -> str:
    """After sign-out: no session; a fresh anonymous CSRF token (returned)."""
    response.delete_cookie(SESSION_COOKIE, path="/", secure=secure_cookies(request, ctx),
                           httponly=True, samesite="lax")
    return set_csrf_cookie(response, request, ctx, "")
