"""The upstream call and its end: relay the answer, meter it, settle, finish the response.

Rules for ends that are not clean (README, "Billing rules"):
- the upstream fails before the first byte: no charge;
- the client disconnects: the upstream call is cancelled at once; the prompt plus the completion
  tokens received so far are charged (status client_disconnected);
- the upstream dies mid-stream: the same charge, and the client gets an error event.

Failover (docs/operators.md, "Upstreams"): a model's upstreams are tried in the order
`UpstreamBoard.order` gives (priority, then weighted random, open breakers last). A connect
error, a timeout before the response head, HTTP 5xx or 429 moves the request to the next one;
so does a non-streamed answer that breaks before it was read whole, as nothing has reached the
client yet. Once a stream's head went to the client there is no failover: a break ends it with
an error event as above. Other 4xx answers are the request's fault and are passed on."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from faregate.api_keys.service import Principal
from faregate.catalog.service import Route
from faregate.errors import (
    FaregateError,
    InvalidRequest,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from faregate.gateway.asgi_io import Receive, Send, send_bytes
from faregate.gateway.prepare import Prepared
from faregate.gateway.state import GatewayState
from faregate.gateway.usage import (
    Usage,
    completion_texts_from_chunk,
    count_completion,
    count_prompt,
    from_usage_object,
)
from faregate.ledger.settlement import UsageFacts
from faregate.pricing.cost import cost
from faregate.upstream.client import post_json
from faregate.upstream.sse import encode_event, iter_event_batches

log = logging.getLogger("faregate.gateway")

_PATHS = {"chat": "/chat/completions", "completions": "/completions",
          "embeddings": "/embeddings", "responses": "/responses"}
_RESPONSES_FINAL = (b'"response.completed"', b'"response.incomplete"', b'"response.failed"')
_MAX_ERROR_BODY = 64 * 1024
WATCH_AFTER_S = 0.2


@dataclass(slots=True)
class Exchange:
    """One request in flight: what the relay learns while it runs."""

    gw: GatewayState
    prep: Prepared
    principal: Principal
    request_id: str
    started: float
    headers: list[tuple[bytes, bytes]]
    usage: Usage | None = None
    events: list[bytes] = field(default_factory=list)
    disconnected: bool = False
    finishing: bool = False
    response: aiohttp.ClientResponse | None = None
    rename: Callable[[bytes], bytes] | None = None
    untried: list[Route] | None = None  # the routes still to try, in order (set on first call)

    def __post_init__(self) -> None:
        self._set_rename()

    def use(self, route: Route) -> None:
        """Fail over to `route`: its body (its name for the model) and its renaming."""
        self.prep.use(route)
        self._set_rename()

    def _set_rename(self) -> None:
        self.rename = None
        public, upstream = self.prep.call.model, self.prep.route.upstream_model
        if public != upstream:  # an alias: show the client the name it asked for
            old, new = orjson.dumps(upstream), orjson.dumps(public)
            olds = [(b'"model":' + old, b'"model":' + new),
                    (b'"model": ' + old, b'"model": ' + new)]

            def rename(data: bytes) -> bytes:
                for old, new in olds:
                    data = data.replace(old, new)
                return data

            self.rename = rename

    def watch_disconnect(self, receive: Receive) -> Callable[[], None]:
        """Notice a client that goes away, and cancel the upstream call at once when it does.

        Streams are watched from the start. Most non-streamed requests end quickly, and what
        a cancelled one had generated cannot be counted anyway, so their watcher (a task
        waiting on `receive`) starts only once they have run for WATCH_AFTER_S. Returns a
        function that stops watching."""
        watcher: asyncio.Future[Any] | None = None

        def done(task: asyncio.Future[Any]) -> None:
            if task.cancelled() or self.finishing or task.exception() is not None:
                return
            if task.result().get("type") == "http.disconnect":
                self.disconnected = True
                if self.response is not None:
                    self.response.close()  # cancels the upstream generation at once

        def start() -> None:
            nonlocal watcher
            if not self.finishing:
                watcher = asyncio.ensure_future(receive())
                watcher.add_done_callback(done)

        if self.prep.call.stream:
            start()
            timer = None
        else:
            timer = asyncio.get_running_loop().call_later(WATCH_AFTER_S, start)

        def stop() -> None:
            if timer is not None:
                timer.cancel()
            if watcher is not None:
                watcher.cancel()

        return stop

    async def settle(self, usage: Usage | None, status: str) -> tuple[int, int]:
        """Post the cost; returns (cost, charged). Durable when it returns."""
        prep = self.prep
        if usage is None:
            usage = Usage(0, 0, 0, "none")
        amount = cost(prep.price, usage.prompt_tokens, usage.cached_tokens,
                      usage.completion_tokens)
        facts = UsageFacts(
            request_id=self.request_id, organization_id=self.principal.organization_id,
            api_key_id=self.principal.key_id, endpoint=prep.call.endpoint,
            model=prep.model.id, upstream=prep.route.upstream,
            prompt_tokens=usage.prompt_tokens, cached_tokens=usage.cached_tokens,
            completion_tokens=usage.completion_tokens, usage_source=usage.source,
            status=status, streamed=prep.call.stream,
            latency_ms=int((time.monotonic() - self.started) * 1000),
            project_id=self.principal.project_id)
        item = await self.gw.credits.settle(prep.reservation, amount, facts)
        return amount, item.charged_nano

    async def local_usage(self, completion_objs: list[dict[str, Any]]) -> Usage:
        """Count tokens ourselves (off the event loop) when the upstream reported none."""
        endpoint, body = self.prep.call.endpoint, self.prep.call.body

        def count() -> Usage:
            texts: list[str] = []
            for obj in completion_objs:
                completion_texts_from_chunk(endpoint, obj, texts)
            for raw in self.events:
                try:
                    obj = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(obj, dict):
                    completion_texts_from_chunk(endpoint, obj, texts)
            return Usage(count_prompt(endpoint, body), 0, count_completion(texts), "local")

        return await asyncio.to_thread(count)


async def call_upstream(ex: Exchange) -> aiohttp.ClientResponse:
    """The first 200 response head from the routes still untried, failing over on connect
    errors, timeouts, 5xx and 429. When none answers (or a 4xx ends the search), settles
    "upstream_error" (no charge) and raises the last error. Figures and breakers are updated
    in memory for every attempt."""
    prep, board = ex.prep, ex.gw.upstreams
    if ex.untried is None:
        ex.untried = board.order(prep.routes)
    path = _PATHS[prep.call.endpoint]
    error: FaregateError | None = None
    while ex.untried and not ex.disconnected:
        route = ex.untried.pop(0)
        if error is not None:
            board.failover(prep.route)
        if route is not prep.route:
            ex.use(route)
        board.begin(route)
        started = time.monotonic()
        try:
            response = await post_json(
                ex.gw.session, route.base_url + path, prep.upstream_body,
                api_key=route.api_key, connect_timeout_s=route.connect_timeout_s,
                read_timeout_s=route.read_timeout_s)
        except FaregateError as exc:
            board.failed(route, _OUTCOMES.get(type(exc), "connect_error"), exc.message)
            error = exc
            continue
        seconds = time.monotonic() - started
        if response.status == 200:
            board.answered(route, seconds, 200)
            ex.response = response
            return response
        try:
            detail = await response.content.read(_MAX_ERROR_BODY)
        except (aiohttp.ClientError, TimeoutError):
            detail = b""
        finally:
            response.release()
        error = _upstream_failure(response.status, detail)
        if response.status >= 500 or response.status == 429:
            board.failed(route, "http_429" if response.status == 429 else "http_5xx",
                         f"HTTP {response.status}", seconds)
            continue
        board.answered(route, seconds, response.status)
        break
    await ex.settle(None, "upstream_error")
    raise error or UpstreamError("The upstream model provider failed to answer.")


_OUTCOMES: dict[type[FaregateError], str] = {UpstreamTimeout: "timeout",
                                             UpstreamUnavailable: "connect_error"}


def _upstream_failure(status: int, detail: bytes) -> FaregateError:
    """The client's view of an upstream's error. The upstream's own message is passed on only
    for errors about the request itself; its credentials or limits are the operator's business."""
    if status in (401, 403):
        log.warning("upstream refused our credentials (HTTP %d): check its API key", status)
        return UpstreamError("The upstream model provider refused the gateway's credentials.")
    if 400 <= status < 500 and status != 429:
        message = None
        try:
            obj = orjson.loads(detail)
            if isinstance(obj, dict) and isinstance(obj.get("error"), dict):
                message = obj["error"].get("message")
        except orjson.JSONDecodeError:
            pass
        error: FaregateError = InvalidRequest(
            str(message or f"The upstream provider rejected the request (HTTP {status})."))
        error.status = status if status in (400, 404, 413, 422) else 400
        return error
    error = UpstreamError(f"The upstream model provider failed (HTTP {status}).")
    if status == 429:
        error.status, error.code = 503, "upstream_overloaded"
    return error


async def relay_once(ex: Exchange, send: Send) -> None:
    """A non-streamed answer: read it whole, meter, settle, then send it unchanged. An answer
    that breaks before it was read whole goes to the next upstream (the client has seen
    nothing yet)."""
    while True:
        response = await call_upstream(ex)
        try:
            raw = await response.read()
        except (aiohttp.ClientError, TimeoutError):
            raw = b""
        finally:
            response.release()
        obj: object = None
        if raw:
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                obj = None
        if isinstance(obj, dict):
            break
        if ex.disconnected:  # the client left: it pays for its prompt, as for a stream
            await ex.settle(await ex.local_usage([]), "client_disconnected")
            return
        ex.gw.upstreams.broken(ex.prep.route, "an unreadable or cut-short response body")
        if not ex.untried:
            await ex.settle(None, "upstream_error")  # nothing usable was delivered: no charge
            raise UpstreamError("The upstream model provider sent an invalid response.")
        ex.gw.upstreams.failover(ex.prep.route)
        ex.response = None
    usage = from_usage_object(ex.prep.call.endpoint, obj.get("usage"))
    if usage is None:
        usage = await ex.local_usage([obj])
    amount, charged = await ex.settle(usage, "ok")
    ex.finishing = True
    if ex.rename is not None:
        raw = ex.rename(raw)
    headers = [*ex.headers, (b"x-faregate-cost-nano-usd", str(amount).encode()),
               (b"x-faregate-charged-nano-usd", str(charged).encode())]
    await send_bytes(send, 200, raw, headers)


async def relay_stream(ex: Exchange, send: Send) -> None:
    """Relay server-sent events as they arrive; settle before the stream's last event."""
    response = await call_upstream(ex)
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
        *ex.headers]})
    relay = _StreamRelay(ex)
    try:
        async for batch in iter_event_batches(response.content.iter_any()):
            out = relay.take(batch)
            if out:
                await send({"type": "http.response.body", "body": out, "more_body": True})
            if relay.done or ex.disconnected:
                break
        else:
            # A clean end of stream without [DONE] (some servers omit it) is a normal end
            # when every choice had finished.
            relay.done = relay.finished and not ex.disconnected
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
        log.info("upstream stream ended abnormally", extra={"request_id": ex.request_id})
    finally:
        if relay.done:
            await _release_after_done(response)
        else:
            response.close()
    if not relay.done and not ex.disconnected:
        ex.gw.upstreams.broken(ex.prep.route, "the stream broke off")
    await _finish_stream(ex, send, relay.done, relay.held_usage_event)


async def _release_after_done(response: aiohttp.ClientResponse) -> None:
    """Return the upstream connection to the pool. The end of the HTTP body usually arrives
    right after [DONE]; an upstream that keeps the stream open loses its connection instead."""
    if not response.content.at_eof():
        try:
            async with asyncio.timeout(0.05):
                await response.read()
        except (aiohttp.ClientError, TimeoutError):
            response.close()
            return
    response.release()


class _StreamRelay:
    """What to pass on of each upstream event, and what to learn from it."""

    def __init__(self, ex: Exchange) -> None:
        self.ex = ex
        self.call = ex.prep.call
        self.done = False
        self.finished = False  # a choice reported its finish_reason
        self.held_usage_event: bytes | None = None

    def take(self, batch: list[bytes]) -> bytes:
        out: list[bytes] = []
        for data in batch:
            if self.done:
                break
            relayed = self._one(data)
            if relayed is not None:
                out.append(encode_event(relayed))
        return b"".join(out)

    def _one(self, data: bytes) -> bytes | None:
        ex, call = self.ex, self.call
        if data == b"[DONE]":
            self.done = True
            return None  # sent by _finish_stream, after settlement
        if call.endpoint == "responses":
            if any(marker in data for marker in _RESPONSES_FINAL):
                final = orjson.loads(data)
                inner = final.get("response") if isinstance(final, dict) else None
                if isinstance(inner, dict):
                    ex.usage = from_usage_object("responses", inner.get("usage"))
                self.done = True
        elif b'"usage"' in data and b'"usage":null' not in data and \
                b'"usage": null' not in data:
            obj = orjson.loads(data)
            found = from_usage_object(call.endpoint, obj.get("usage"))
            if found is not None:
                ex.usage = found
            if not obj.get("choices"):
                if call.client_wants_usage:
                    self.held_usage_event = ex.rename(data) if ex.rename else data
                return None
            if not call.client_wants_usage:
                del obj["usage"]
                data = orjson.dumps(obj)
        if b'"finish_reason":"' in data or b'"finish_reason": "' in data:
            self.finished = True
        if not call.client_wants_usage and b'"usage":null' in data:
            data = data.replace(b',"usage":null', b"").replace(b'"usage":null,', b"")
        if ex.rename is not None:
            data = ex.rename(data)
        ex.events.append(data)
        return data


async def _finish_stream(ex: Exchange, send: Send, done: bool,
                         held_usage_event: bytes | None) -> None:
    call = ex.prep.call
    if ex.disconnected:
        status = "client_disconnected"
    elif done:
        status = "ok"
    else:
        status = "upstream_error"
    # The upstream's own count is authoritative whenever it arrived.
    usage = ex.usage if ex.usage is not None else await ex.local_usage([])
    await ex.settle(usage, status)
    if ex.disconnected:
        return
    ex.finishing = True
    tail: list[bytes] = []
    if call.client_wants_usage and status == "ok":
        tail.append(encode_event(held_usage_event or _usage_chunk(ex, usage)))
    if status == "ok":
        if call.endpoint != "responses":
            tail.append(b"data: [DONE]\n\n")
    else:
        error = UpstreamError("The upstream model provider stopped in the middle of the "
                              "response. You were charged only for what was received.")
        tail.append(encode_event(orjson.dumps(error.body())))
    await send({"type": "http.response.body", "body": b"".join(tail), "more_body": False})


def _usage_chunk(ex: Exchange, usage: Usage) -> bytes:
    """The final usage chunk, when the client asked for one and the upstream sent none."""
    first: dict[str, Any] = {}
    if ex.events:
        try:
            parsed = orjson.loads(ex.events[0])
            first = parsed if isinstance(parsed, dict) else {}
        except orjson.JSONDecodeError:
            first = {}
    chat = ex.prep.call.endpoint == "chat"
    return orjson.dumps({
        "id": first.get("id", "chatcmpl-" + ex.request_id[4:]),
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": first.get("created", int(time.time())),
        "model": first.get("model", ex.prep.call.model),
        "choices": [],
        "usage": {"prompt_tokens": usage.prompt_tokens,
                  "completion_tokens": usage.completion_tokens,
                  "total_tokens": usage.prompt_tokens + usage.completion_tokens,
                  "prompt_tokens_details": {"cached_tokens": usage.cached_tokens}},
    })
