"""Shared helpers for the client-facing end-to-end tests (test_openai_schema, test_sdk,
test_errors, test_fakellm): a running gateway (one server process, optionally a standalone dev
model as an extra upstream), raw HTTP and SDK clients, SSE parsing, the price rule, and the
usage-record readback.

These are plain context managers and functions; each test module builds its own module-scoped
fixture from `running_gateway(...)`, so that one server serves a whole module."""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import openai

from faregate.catalog.service import ModelPrice
from faregate.identity.users import User
from tests.harness import Deployment, Proc, deployment

# The built-in development models' prices (faregate.catalog.devmodels).
DEV_CHAT_PRICE = ModelPrice(500_000_000, 250_000_000, 1_500_000_000)
DEV_EMBED_PRICE = ModelPrice(20_000_000, 20_000_000, 0)
ONE_DOLLAR = 1_000_000_000  # nano-USD

_emails = itertools.count()


def price_rule(price: ModelPrice, prompt: int, cached: int, completion: int) -> int:
    """ceil(Σ tokens × price / 1e6), written out independently of faregate.pricing."""
    cached = min(cached, prompt)
    total = ((prompt - cached) * price.input_nano_per_1m + cached * price.cached_input_nano_per_1m
             + completion * price.output_nano_per_1m)
    return -(-total // 1_000_000)


def usage_tokens(usage: dict[str, Any]) -> tuple[int, int, int]:
    """(prompt, cached, completion) from a usage object of any endpoint, as the client got it."""
    if "input_tokens" in usage:  # Responses API
        details = usage.get("input_tokens_details") or {}
        return (int(usage["input_tokens"]), int(details.get("cached_tokens") or 0),
                int(usage["output_tokens"]))
    details = usage.get("prompt_tokens_details") or {}
    return (int(usage["prompt_tokens"]), int(details.get("cached_tokens") or 0),
            int(usage.get("completion_tokens") or 0))


@dataclass
class Gateway:
    """One Faregate server on one deployment (plus whatever upstreams the module added)."""

    dep: Deployment
    server: Proc
    devmodel: Proc | None = None
    upstreams: dict[str, Proc] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.base_url + "/v1"

    def user(self, grant_nano: int = ONE_DOLLAR) -> tuple[User, str]:
        """A new user (own organization) with `grant_nano` of credit, and an API key."""
        user = self.dep.new_user(f"e2e-{next(_emails)}@example.com", grant_nano)
        _, key = self.dep.new_key(user)
        return user, key

    def client(self, key: str, **kwargs: Any) -> openai.OpenAI:
        kwargs.setdefault("timeout", 30.0)
        return openai.OpenAI(api_key=key, base_url=self.url, **kwargs)

    def http(self, **kwargs: Any) -> httpx2.Client:
        kwargs.setdefault("timeout", 30.0)
        return httpx2.Client(base_url=self.server.base_url, **kwargs)

    def post(self, path: str, key: str | None, body: Any = None, *,
             content: bytes | None = None, headers: dict[str, str] | None = None
             ) -> httpx2.Response:
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if key is not None:
            hdrs["Authorization"] = f"Bearer {key}"
        if content is None:
            content = json.dumps(body).encode()
        with self.http() as http:
            return http.post(path, content=content, headers=hdrs)

    def record(self, key: str, request_id: str) -> dict[str, Any]:
        """GET /v1/faregate/requests/{id}: the usage record of one request."""
        with self.http() as http:
            resp = http.get(f"/v1/faregate/requests/{request_id}",
                            headers={"Authorization": f"Bearer {key}"})
        assert resp.status_code == 200, resp.text
        assert resp.headers.get("x-request-id", "").startswith("req_")
        record: dict[str, Any] = resp.json()
        return record

    def no_record(self, key: str, request_id: str) -> bool:
        """True when no usage record exists for the request (e.g. refused before reserving),
        or one exists and charged nothing."""
        with self.http() as http:
            resp = http.get(f"/v1/faregate/requests/{request_id}",
                            headers={"Authorization": f"Bearer {key}"})
        if resp.status_code == 404:
            return True
        assert resp.status_code == 200, resp.text
        return bool(resp.json()["charged_nano_usd"] == 0 and resp.json()["cost_nano_usd"] == 0)


@contextlib.contextmanager
def running_gateway(data_dir: Path, database_url: str | None = None, *,
                    devmodel: bool = False,
                    aliases: dict[str, str] | None = None,
                    alias_price: ModelPrice = DEV_CHAT_PRICE,
                    setup: Callable[[Deployment], None] | None = None,
                    **server_env: str) -> Iterator[Gateway]:
    """A deployment with one server. With `devmodel`, a standalone dev model runs too and each
    of `aliases` (public name -> dev model name with options) routes to it."""
    with deployment(data_dir, database_url) as dep:
        dm = None
        if devmodel or aliases:
            dm = dep.start_devmodel()
            if aliases:
                dep.add_upstream("standalone-dev", dm.base_url + "/v1", aliases, alias_price)
        if setup is not None:
            setup(dep)
        server = dep.start_server(**server_env)
        yield Gateway(dep, server, dm)


# --- server-sent events --------------------------------------------------------------------

def sse_data(raw: bytes) -> list[bytes]:
    """The `data:` payloads of an SSE body, in order (including b"[DONE]")."""
    out: list[bytes] = []
    for event in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        lines = [line[5:].lstrip(b" ") for line in event.split(b"\n")
                 if line.startswith(b"data:")]
        if lines:
            out.append(b"\n".join(lines))
    return out


def stream_raw(gw: Gateway, path: str, key: str, body: dict[str, Any]
               ) -> tuple[httpx2.Response, list[bytes]]:
    """POST a streaming request and read the whole event stream."""
    with gw.http() as http, http.stream(
            "POST", path, content=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {key}",
                     "Content-Type": "application/json"}) as resp:
        raw = resp.read()
    return resp, sse_data(raw)


def json_events(events: list[bytes]) -> list[dict[str, Any]]:
    return [json.loads(e) for e in events if e != b"[DONE]"]


class RequestCounter:
    """An httpx event hook that counts the HTTP requests an SDK client really sends."""

    def __init__(self) -> None:
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> None:
        self.requests.append(request)

    def client(self, gw: Gateway, key: str, **kwargs: Any) -> openai.OpenAI:
        http = openai.DefaultHttpxClient(event_hooks={"request": [self]})
        return gw.client(key, http_client=http, **kwargs)

    def __len__(self) -> int:
        return len(self.requests)
