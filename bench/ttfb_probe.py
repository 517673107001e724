"""Sequential (c=1) streaming probe: time to response headers, first body byte, and end of stream.

wrk only sees whole responses, so streaming time-to-first-byte is measured here. Requests are sent
one after another over one keep-alive connection; prints one JSON object on stdout.

    python bench/ttfb_probe.py --url http://127.0.0.1:9100/v1/chat/completions --n 300
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import aiohttp


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


async def probe(url: str, body: bytes, keys: list[str], n: int, warmup: int) -> dict[str, object]:
    headers_ms: list[float] = []
    ttfb_ms: list[float] = []
    total_ms: list[float] = []
    errors = 0
    bad_streams = 0
    connector = aiohttp.TCPConnector(limit=1, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for i in range(warmup + n):
            hdrs = {"Content-Type": "application/json"}
            if keys:
                hdrs["Authorization"] = "Bearer " + keys[i % len(keys)]
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=hdrs) as resp:
                    t_headers = time.perf_counter()
                    first = await resp.content.readany()
                    t_first = time.perf_counter()
                    rest = [first]
                    async for chunk in resp.content.iter_any():
                        rest.append(chunk)
                    t_end = time.perf_counter()
                    ok = resp.status == 200
            except (TimeoutError, aiohttp.ClientError):
                errors += 1
                continue
            if not ok:
                errors += 1
                continue
            if b"[DONE]" not in b"".join(rest):
                bad_streams += 1
            if i >= warmup:
                headers_ms.append((t_headers - t0) * 1000)
                ttfb_ms.append((t_first - t0) * 1000)
                total_ms.append((t_end - t0) * 1000)
    return {
        "n": len(ttfb_ms),
        "errors": errors,
        "bad_streams": bad_streams,
        "headers_p50_ms": _pct(headers_ms, 50),
        "headers_p99_ms": _pct(headers_ms, 99),
        "ttfb_p50_ms": _pct(ttfb_ms, 50),
        "ttfb_p99_ms": _pct(ttfb_ms, 99),
        "total_p50_ms": _pct(total_ms, 50),
        "total_p99_ms": _pct(total_ms, 99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", help="JSON body (default: a small streaming chat request)")
    parser.add_argument("--keys-file", help="API keys, one per line (rotated)")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()
    if args.body_file:
        with open(args.body_file, "rb") as f:
            body = f.read()
    else:
        body = json.dumps({
            "model": "bench-model", "max_tokens": 16, "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "Say hello"}],
        }).encode()
    keys: list[str] = []
    if args.keys_file:
        with open(args.keys_file) as f:
            keys = [line.strip() for line in f if line.strip()]
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(probe(args.url, body, keys, args.n, args.warmup))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
