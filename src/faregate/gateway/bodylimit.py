"""The /v1 request body cap (FAREGATE_MAX_REQUEST_BODY_BYTES), answered with OpenAI's error
object (413 `request_too_large`):

- a declared Content-Length over the cap is refused before anything else (authentication
  included): one integer compare;
- a body without Content-Length (chunked) is counted while it is read and refused as soon as
  it passes the cap, without reading the rest. With a Content-Length within the cap the HTTP
  parser delivers no more than declared, so the count never trips.

Either way the answer says `connection: close`: the server hangs up instead of swallowing the
rest of an unwanted body on a kept-alive connection."""

from __future__ import annotations

from faregate.errors import PayloadTooLarge
from faregate.gateway.asgi_io import Receive, Scope, read_body

_CLOSE = {"connection": "close"}


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Request body too large: the limit is {limit} bytes.",
                           headers=_CLOSE)


def check_declared(scope: Scope, limit: int) -> None:
    """Raise 413 when the request declares a body over `limit` bytes."""
    for key, value in scope["headers"]:
        if key == b"content-length":
            if value.isdigit() and int(value) > limit:
                raise too_large(limit)
            return


async def read_capped(receive: Receive, limit: int) -> bytes:
    """The whole body, or 413 as soon as it passes `limit` bytes."""
    try:
        return await read_body(receive, limit)
    except PayloadTooLarge:
        raise too_large(limit) from None
