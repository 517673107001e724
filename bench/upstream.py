"""Fast fake OpenAI-compatible upstream for the benchmark.

A raw ASGI app on uvicorn (uvloop + httptools, access log off). It answers

* ``POST /v1/chat/completions`` with a fixed small ``chat.completion`` (with ``usage``), or, for
  ``"stream": true``, a few ``chat.completion.chunk`` events, a usage chunk when
  ``stream_options.include_usage`` is set, and ``data: [DONE]``;
* ``GET /v1/models`` with a one-model list;
* ``GET /healthz`` with ``ok``.

Everything that can be precomputed is precomputed, so the upstream costs as little CPU as possible.
``max_tokens`` is honoured loosely: ``completion_tokens`` never exceeds it.

    python bench/upstream.py --port 9100
"""

from __future__ import annotations

import argparse
import asyncio
import time

import orjson

CONTENT_PIECES = ["Hello", " from", " the", " bench", " upstream."]
PROMPT_TOKENS = 12
COMPLETION_TOKENS = len(CONTENT_PIECES)

_JSON_HEADERS = [(b"content-type", b"application/json")]
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
]


def _usage(max_tokens: int | None) -> dict[str, int]:
    completion = COMPLETION_TOKENS if not max_tokens else min(COMPLETION_TOKENS, max_tokens)
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": completion,
        "total_tokens": PROMPT_TOKENS + completion,
    }


def _completion_body(model: str, max_tokens: int | None) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(CONTENT_PIECES)},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": _usage(max_tokens),
        }
    )


def _sse(obj: object) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _stream_events(model: str, max_tokens: int | None, include_usage: bool) -> list[bytes]:
    created = int(time.time())

    def chunk(delta: dict[str, str], finish: str | None) -> dict[str, object]:
        out: dict[str, object] = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        if include_usage:
            out["usage"] = None
        return out

    events = [_sse(chunk({"role": "assistant", "content": ""}, None))]
    events += [_sse(chunk({"content": piece}, None)) for piece in CONTENT_PIECES]
    events.append(_sse(chunk({}, "stop")))
    if include_usage:
        events.append(
            _sse(
                {
                    "id": "chatcmpl-bench",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": _usage(max_tokens),
                }
            )
        )
    events.append(b"data: [DONE]\n\n")
    return events


# Cache of prebuilt responses keyed by (model, max_tokens, stream, include_usage).
_CACHE: dict[tuple[str, int | None, bool, bool], object] = {}
_MODELS_BODY = orjson.dumps(
    {"object": "list", "data": [{"id": "bench-model", "object": "model", "owned_by": "bench"}]}
)
CHUNK_DELAY_S = 0.0


async def _read_body(receive) -> bytes:  # type: ignore[no-untyped-def]
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def _send_simple(send, status: int, body: bytes, headers=_JSON_HEADERS) -> None:  # type: ignore[no-untyped-def]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    path = scope["path"]
    if scope["method"] == "POST" and path.endswith("/chat/completions"):
        raw = await _read_body(receive)
        try:
            req = orjson.loads(raw)
            model = str(req.get("model") or "bench-model")
            max_tokens = req.get("max_completion_tokens") or req.get("max_tokens")
            stream = bool(req.get("stream"))
            include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            await _send_simple(send, 400, b'{"error":{"message":"bad json","type":"invalid"}}')
            return
        key = (model, max_tokens if isinstance(max_tokens, int) else None, stream, include_usage)
        cached = _CACHE.get(key)
        if cached is None:
            if stream:
                cached = _stream_events(model, key[1], include_usage)
            else:
                cached = _completion_body(model, key[1])
            if len(_CACHE) < 1024:
                _CACHE[key] = cached
        if not stream:
            await _send_simple(send, 200, cached)  # type: ignore[arg-type]
            return
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        for event in cached:  # type: ignore[attr-defined]
            await send({"type": "http.response.body", "body": event, "more_body": True})
            if CHUNK_DELAY_S:
                await asyncio.sleep(CHUNK_DELAY_S)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    if scope["method"] == "GET" and path.endswith("/models"):
        await _send_simple(send, 200, _MODELS_BODY)
        return
    if scope["method"] == "GET" and path in ("/healthz", "/health", "/"):
        await _send_simple(send, 200, b"ok", [(b"content-type", b"text/plain")])
        return
    await _send_simple(send, 404, b'{"error":{"message":"not found","type":"not_found"}}')


def main() -> None:
    global CHUNK_DELAY_S
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0,
                        help="sleep between stream chunks (default 0: as fast as possible)")
    args = parser.parse_args()
    CHUNK_DELAY_S = args.chunk_delay_ms / 1000.0

    import uvicorn

    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        backlog=4096,
        timeout_keep_alive=60,
    )


if __name__ == "__main__":
    main()
