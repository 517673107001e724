"""Bare pass-through proxy: the floor any Python gateway on this stack can reach.

A raw ASGI app on uvicorn (uvloop + httptools, access log off) with one shared
``aiohttp.ClientSession`` (``TCPConnector(limit=0)``). No auth, no parsing, no metering: it reads
the request body, POSTs it to the upstream, and relays the response: non-stream bodies whole,
``text/event-stream`` bodies chunk by chunk as they arrive.

    python bench/bare_proxy.py --port 9200 --upstream http://127.0.0.1:9100
"""

from __future__ import annotations

import argparse

import aiohttp

UPSTREAM = "http://127.0.0.1:9100"
_session: aiohttp.ClientSession | None = None
_BAD_GATEWAY = b'{"error":{"message":"upstream unreachable","type":"bad_gateway"}}'


async def _lifespan(receive, send) -> None:  # type: ignore[no-untyped-def]
    global _session
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            _session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=600),
                auto_decompress=False,
            )
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if _session is not None:
                await _session.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    url = UPSTREAM + scope["path"]
    if scope["query_string"]:
        url += "?" + scope["query_string"].decode("latin-1")
    headers = {"Content-Type": "application/json"}
    assert _session is not None
    try:
        async with _session.request(scope["method"], url, data=body, headers=headers) as resp:
            ctype = resp.headers.get("Content-Type", "application/json")
            if ctype.startswith("text/event-stream"):
                await send(
                    {
                        "type": "http.response.start",
                        "status": resp.status,
                        "headers": [
                            (b"content-type", ctype.encode("latin-1")),
                            (b"cache-control", b"no-cache"),
                        ],
                    }
                )
                async for chunk in resp.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            data = await resp.read()
            status = resp.status
    except aiohttp.ClientError:
        ctype, data, status = "application/json", _BAD_GATEWAY, 502
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", ctype.encode("latin-1")),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


def main() -> None:
    global UPSTREAM
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--upstream", default=UPSTREAM,
                        help="upstream origin, without /v1 (paths are relayed as-is)")
    args = parser.parse_args()
    UPSTREAM = args.upstream.rstrip("/")

    import uvicorn

    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        backlog=4096,
        timeout_keep_alive=60,
    )


if __name__ == "__main__":
    main()
