"""Faregate in front of a third-party OpenAI-compatible server: `fakellm` (PyPI), a mock that
reports usage on plain completions but sends no usage chunk when streaming, whatever the
request's stream_options say.

- plain chat: fakellm's own usage is what gets billed (usage_source "upstream");
- stream with include_usage: Faregate counts the tokens itself and sends its own final usage
  chunk (usage_source "local");
- stream without include_usage: no usage reaches the client, the request is billed all the same;
- fakellm's 429 scenario is triggered by a header Faregate does not forward, so the config used
  here adds the same 429 rule triggered by message content: an upstream 429 becomes a 503
  `upstream_overloaded` for the client, and costs nothing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from faregate.catalog.service import ModelPrice
from tests.e2e.fixtures_gateway import Gateway, price_rule, running_gateway, usage_tokens
from tests.harness import Deployment, Proc, free_port, wait_http

pytestmark = pytest.mark.timeout(120)

MODEL = "fake-model"
PRICE = ModelPrice(1_000_000_000, 500_000_000, 4_000_000_000)  # $1 / $0.50 / $4 per 1M
RATE_LIMIT_TRIGGER = "please rate limit me"
MESSAGES: Any = [{"role": "system", "content": "You are a mock."},
                 {"role": "user", "content": "Hello, how are you today?"}]


def start_fakellm(dep: Deployment, workdir: Path) -> Proc:
    """`fakellm init` + a content-triggered copy of its 429 rule, then `fakellm serve`."""
    workdir.mkdir(parents=True, exist_ok=True)
    fakellm = str(Path(sys.executable).with_name("fakellm"))
    subprocess.run([fakellm, "init"], cwd=workdir, check=True, capture_output=True)
    config_path = workdir / "fakellm.yaml"
    config = yaml.safe_load(config_path.read_text())
    assert any(r.get("respond", {}).get("status") == 429 for r in config["rules"]), \
        "fakellm's starter config no longer has its rate-limit scenario"
    config["rules"].insert(0, {"name": "rate_limit_by_content",
                               "when": {"messages_contain": RATE_LIMIT_TRIGGER},
                               "respond": {"status": 429, "error": "Rate limit exceeded (mock)"}})
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    log = workdir / "fakellm.log"
    proc = subprocess.Popen([fakellm, "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--config", str(config_path)],
                            cwd=workdir, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    upstream = Proc(proc, port, log, "upstream")
    dep.procs.append(upstream)
    wait_http(f"{upstream.base_url}/_fakellm/stats", proc=proc)
    return upstream


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    base = tmp_path_factory.mktemp("fakellm")
    started: dict[str, Proc] = {}

    def setup(dep: Deployment) -> None:
        started["fake"] = fake = start_fakellm(dep, base / "fakellm")
        dep.add_upstream("fake", f"{fake.base_url}/v1", {MODEL: "gpt-4o-mini"}, PRICE)

    with running_gateway(base / "fg", setup=setup) as gateway:
        gateway.upstreams.update(started)
        yield gateway


@pytest.fixture(scope="module")
def key(gw: Gateway) -> str:
    return gw.user()[1]


def billed(gw: Gateway, key: str, request_id: str) -> dict[str, Any]:
    record = gw.record(key, request_id)
    assert record["status"] == "ok" and record["upstream"] == "fake"
    assert record["charged_nano_usd"] == record["cost_nano_usd"] == price_rule(
        PRICE, record["prompt_tokens"], record["cached_tokens"], record["completion_tokens"])
    return record


def test_chat_non_stream_bills_fakellm_usage(gw: Gateway, key: str) -> None:
    with gw.client(key) as client:
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
    completion = raw.parse()
    assert completion.choices[0].message.content == \
        "Hi there! This is a mock response from fakellm."  # fakellm's "greeting" rule
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    record = billed(gw, key, raw.headers["x-request-id"])
    assert record["usage_source"] == "upstream"
    assert (record["prompt_tokens"], record["cached_tokens"], record["completion_tokens"]) == \
        usage_tokens(completion.usage.model_dump())
    assert int(raw.headers["x-faregate-charged-nano-usd"]) == record["charged_nano_usd"] > 0


def test_stream_with_include_usage_gets_a_local_count(gw: Gateway, key: str) -> None:
    with gw.client(key) as client:
        stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True,
                                                stream_options={"include_usage": True})
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hi there! This is a mock response from fakellm."
    with_usage = [c for c in chunks if c.usage is not None]
    assert with_usage == [chunks[-1]], "exactly one usage chunk, the last"
    last = chunks[-1]
    assert last.choices == [] and last.object == "chat.completion.chunk"
    assert last.id == chunks[0].id
    usage = last.usage
    assert usage is not None
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    record = billed(gw, key, stream.response.headers["x-request-id"])
    assert record["usage_source"] == "local"
    assert (record["prompt_tokens"], record["completion_tokens"]) == (
        usage.prompt_tokens, usage.completion_tokens)


def test_stream_without_include_usage_sends_no_usage(gw: Gateway, key: str) -> None:
    with gw.client(key) as client:
        stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        chunks = list(stream)
    assert chunks and all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks), "no usage-only chunk"
    record = billed(gw, key, stream.response.headers["x-request-id"])
    assert record["usage_source"] == "local"
    assert record["completion_tokens"] > 0 and record["charged_nano_usd"] > 0


def test_fakellm_429_is_503_and_free(gw: Gateway) -> None:
    user, key = gw.user()
    before = gw.dep.balance(user)[0]
    messages: Any = [{"role": "user", "content": f"Now {RATE_LIMIT_TRIGGER}."}]
    with gw.client(key, max_retries=0) as client, \
            pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(model=MODEL, messages=messages)
    assert err.value.status_code == 503
    assert err.value.code == "upstream_overloaded"
    assert err.value.request_id and err.value.request_id.startswith("req_")
    assert gw.dep.balance(user)[0] == before
    assert gw.no_record(key, err.value.request_id)
    # The header-triggered original cannot pass through: Faregate does not forward it.
    with gw.client(key, max_retries=0,
                   default_headers={"x-test-scenario": "rate_limit"}) as client:
        ok = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert ok.choices[0].message.content
