"""The /v1 ASGI app: routing, authentication, errors in OpenAI's format, x-request-id."""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

from faregate.api_keys.scopes import ENDPOINT_SCOPE
from faregate.api_keys.service import Principal
from faregate.db.outage import UNAVAILABLE
from faregate.errors import AuthenticationFailed, DatabaseUnavailable, FaregateError, NotFound
from faregate.gateway.admin_usage import PREFIX as ADMIN_PREFIX
from faregate.gateway.admin_usage import serve_admin
from faregate.gateway.asgi_io import (
    ClientGone,
    Receive,
    Scope,
    Send,
    header,
    send_error,
    send_json,
)
from faregate.gateway.bodylimit import check_declared, read_capped
from faregate.gateway.model_list import listed_models, one_model
from faregate.gateway.parse import PARSERS, decode_body
from faregate.gateway.prepare import prepare
from faregate.gateway.relay import Exchange, relay_once, relay_stream
from faregate.gateway.request_log import Capture
from faregate.gateway.state import GatewayState
from faregate.kit.ids import request_id
from faregate.kit.netinfo import client_ip
from faregate.usage.records import request_record
from faregate.usage.request_logs import read_log

log = logging.getLogger("faregate.gateway")

_POST_ROUTES = {"/v1/chat/completions": "chat", "/v1/completions": "completions",
                "/v1/embeddings": "embeddings", "/v1/responses": "responses"}


class MethodNotAllowed(FaregateError):
    status = 405
    type = "invalid_request_error"


class GatewayApp:
    def __init__(self, state: GatewayState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = request_id()
        headers = [(b"x-request-id", rid.encode())]
        started = {"value": False}

        async def tracked_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started["value"] = True
            await send(message)

        try:
            await self._dispatch(scope, receive, tracked_send, rid, headers)  # type: ignore[arg-type]
        except FaregateError as error:
            if not started["value"]:
                await send_error(send, error, headers)
        except ClientGone:
            return
        except UNAVAILABLE as exc:
            log.warning("database unavailable: %s", type(exc).__name__,
                        extra={"request_id": rid})
            if not started["value"]:
                await send_error(send, DatabaseUnavailable(), headers)
        except Exception:
            log.exception("unhandled error in /v1", extra={"request_id": rid})
            if not started["value"]:
                await send_json(send, 500, {"error": {
                    "message": "The server had an error while processing your request. "
                               f"Please include the request ID {rid} if you contact support.",
                    "type": "server_error", "param": None, "code": None}}, headers)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send, rid: str,
                        headers: list[tuple[bytes, bytes]]) -> None:
        path: str = scope["path"].rstrip("/")
        method: str = scope["method"]
        endpoint = _POST_ROUTES.get(path)
        if endpoint is None and path.startswith(ADMIN_PREFIX):  # usage and costs APIs
            await serve_admin(self.state, scope, send, headers)
            return
        if endpoint is None and not (path == "/v1/models" or path.startswith("/v1/models/")
                                     or path.startswith("/v1/faregate/requests/")):
            raise NotFound(f"Invalid URL ({method} {path})")
        if (endpoint is not None and method != "POST") or (endpoint is None and method != "GET"):
            raise MethodNotAllowed(f"Method not allowed ({method} {path})")
        gw = self.state
        if endpoint is not None:  # a declared body over the cap: 413 before anything else
            check_declared(scope, gw.settings.max_request_body_bytes)
        principal = await gw.auth.authenticate(header(scope, b"authorization"),
                                               client_ip(scope, gw.trusted_proxies))
        _check_scope(principal, endpoint or ("requests" if path.startswith("/v1/faregate/")
                                             else "models"))
        if endpoint is None:
            await self._get(path, principal, send, headers)
            return
        if principal.log_requests or gw.log_all_requests:  # off: the only cost of logging
            await self._logged(endpoint, receive, send, rid, headers, principal)
            return
        await self._call(endpoint, receive, send, rid, headers, principal)

    async def _call(self, endpoint: str, receive: Receive, send: Send, rid: str,
                    headers: list[tuple[bytes, bytes]], principal: Principal) -> None:
        gw = self.state
        raw = await read_capped(receive, gw.settings.max_request_body_bytes)
        call = PARSERS[endpoint](decode_body(raw))
        if gw.rates is not None:  # RPM/TPM by usage tier and key, before anything is reserved
            headers += await gw.rates.check(principal, call, len(raw), gw.catalog.snapshot)
        prep = await prepare(gw, call, principal, raw)
        if prep.lowered_to is not None:
            headers.append((b"x-faregate-output-limit", str(prep.lowered_to).encode()))
        ex = Exchange(gw, prep, principal, rid, time.monotonic(), headers)
        stop_watching = ex.watch_disconnect(receive)
        try:
            if call.stream:
                await relay_stream(ex, send)
            else:
                await relay_once(ex, send)
        finally:
            ex.finishing = True
            stop_watching()
            gw.credits.release(prep.reservation)  # no-op once settled

    async def _logged(self, endpoint: str, receive: Receive, send: Send, rid: str,
                      headers: list[tuple[bytes, bytes]], principal: Principal) -> None:
        """A model call whose bodies are logged (gateway/request_log.py); the client is told
        so in a header."""
        writer = self.state.request_log
        if writer is None:
            await self._call(endpoint, receive, send, rid, headers, principal)
            return
        capture = Capture(rid, principal.organization_id, endpoint,
                          self.state.settings.request_log_max_bytes)
        headers.append((b"x-faregate-request-logged", b"true"))
        try:
            await self._call(endpoint, capture.receive(receive), capture.send(send), rid,
                             headers, principal)
        except BaseException as error:
            capture.failed(error)
            raise
        finally:
            writer.submit(capture.finish())

    async def _get(self, path: str, principal: Principal, send: Send,
                   headers: list[tuple[bytes, bytes]]) -> None:
        org_id = principal.organization_id
        if path.startswith("/v1/faregate/requests/"):
            if path.endswith("/log"):
                await self._log(path[len("/v1/faregate/requests/"):-len("/log")], org_id, send,
                                headers)
                return
            record = await self.state.db.run(request_record, path.rsplit("/", 1)[1], org_id)
            if record is None:
                raise NotFound("No request with that id in your organization.")
            await send_json(send, 200, record, headers)
            return
        snapshot = self.state.catalog.snapshot
        if path == "/v1/models":
            await send_json(send, 200, {"object": "list",
                                        "data": listed_models(snapshot, principal)}, headers)
            return
        await send_json(send, 200, one_model(snapshot, principal, path[len("/v1/models/"):]),
                        headers)

    async def _log(self, rid: str, org_id: str, send: Send,
                   headers: list[tuple[bytes, bytes]]) -> None:
        """GET /v1/faregate/requests/{id}/log: the request's logged bodies, if it was logged."""
        writer = self.state.request_log
        entry = None
        if writer is not None and "/" not in rid:
            entry = await self.state.db.run(functools.partial(
                read_log, request_id=rid, sealer=writer.sealer, organization_id=org_id))
        if entry is None:
            raise NotFound("No request log with that id in your organization: request logging "
                           "is off for it, or the log has expired.")
        await send_json(send, 200,
                        entry.as_json(self.state.settings.request_log_retention_days), headers)


def _check_scope(principal: Principal, endpoint: str) -> None:
    if principal.kind == "admin":
        raise AuthenticationFailed(
            "Admin keys read the organization's usage and costs; they cannot make model "
            "requests. Use a project key.", code=None)
    if principal.scopes is not None:
        needed = ENDPOINT_SCOPE[endpoint]
        if needed not in principal.scopes:
            raise AuthenticationFailed(
                "You have insufficient permissions for this operation. Missing scopes: "
                f"{needed}. Check that your API key has the necessary scopes.", code=None)

