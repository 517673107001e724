"""Streaming clients for the fault tests: each one request, read to the end as raw SSE, with
what the client saw kept for the checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from tests.e2e.sse_client import chat_stream_request, sse_data


@dataclass
class Stream:
    base: str
    status: int = 0
    request_id: str = ""
    chunks: int = 0
    done: bool = False  # [DONE] arrived
    usage: dict[str, Any] | None = None
    error: dict[str, Any] | None = None  # an error event's "error" object, or a refusal's
    cut: bool = False  # the connection broke before the stream ended
    text: str = ""


async def stream_chat(session: aiohttp.ClientSession, base: str, key: str, model: str, *,
                      max_tokens: int = 20, prompt: str = "hello",
                      on_chunk: Callable[[Stream], None] | None = None) -> Stream:
    out = Stream(base)
    body, headers = chat_stream_request(key, model, prompt, max_tokens)
    try:
        async with session.post(f"{base}/v1/chat/completions", data=body,
                                headers=headers) as resp:
            out.status = resp.status
            out.request_id = resp.headers.get("x-request-id", "")
            if resp.status != 200:
                out.error = (await resp.json())["error"]
                return out
            async for data in sse_data(resp.content.iter_any()):
                if data == b"[DONE]":
                    out.done = True
                    continue
                obj = orjson.loads(data)
                if "error" in obj:
                    out.error = obj["error"]
                    continue
                if obj.get("usage"):
                    out.usage = obj["usage"]
                for choice in obj.get("choices") or ():
                    out.text += (choice.get("delta") or {}).get("content") or ""
                out.chunks += 1
                if on_chunk is not None:
                    on_chunk(out)
    except (TimeoutError, aiohttp.ClientError):
        out.cut = True
    return out


def sessions(n: int, timeout_s: float = 60) -> list[aiohttp.ClientSession]:
    """Independent clients, each with its own unbounded connection pool."""
    return [aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s),
                                  connector=aiohttp.TCPConnector(limit=0))
            for _ in range(n)]
