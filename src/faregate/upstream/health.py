"""Health checks: GET {base_url}/models with a short timeout, as every OpenAI-compatible
server answers it cheaply. Any answer but a 200 within the timeout is a failure."""

from __future__ import annotations

import aiohttp

from faregate.upstream.client import _headers


async def check(session: aiohttp.ClientSession, base_url: str, api_key: str | None,
                timeout_s: float) -> str | None:
    """None when the upstream is healthy, else what went wrong (for the operator)."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with session.get(base_url + "/models", headers=_headers(api_key),
                               timeout=timeout) as response:
            if response.status != 200:
                return f"GET /models answered HTTP {response.status}"
            await response.read()
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except aiohttp.ClientConnectorError:
        return "could not connect"
    except aiohttp.ClientError as exc:
        return f"connection failed ({type(exc).__name__})"
    return None
