"""The official `openai` SDK against a real Faregate server: every endpoint, streamed and not,
and the money: each request's cost, read back, is the price rule applied to the usage the client
received, and the organization's balance goes down by exactly the sum (checked after a clean
SIGTERM shutdown, with `ledger verify` clean and no lease left open) on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest

from faregate.catalog.service import ModelPrice
from tests.e2e.fixtures_gateway import (
    DEV_CHAT_PRICE,
    DEV_EMBED_PRICE,
    Gateway,
    price_rule,
    running_gateway,
    usage_tokens,
)
from tests.harness import Deployment

pytestmark = pytest.mark.timeout(120)

MESSAGES: list[Any] = [{"role": "system", "content": "You are a careful assistant."},
                       {"role": "user", "content": "Name three colours of the sea."}]
TOOLS: list[Any] = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"], "additionalProperties": False},
    "strict": True}}]
JSON_SCHEMA_FORMAT: Any = {"type": "json_schema", "json_schema": {
    "name": "colours", "strict": True,
    "schema": {"type": "object", "properties": {"colours": {"type": "array",
                                                            "items": {"type": "string"}}},
               "required": ["colours"], "additionalProperties": False}}}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(tmp_path_factory.mktemp("sdk") / "fg") as gateway:
        yield gateway


@pytest.fixture(scope="module")
def client(gw: Gateway) -> Iterator[openai.OpenAI]:
    _, key = gw.user()
    with gw.client(key) as c:
        yield c


def _key(client: openai.OpenAI) -> str:
    return str(client.api_key)


def check_cost(gw: Gateway, client: openai.OpenAI, request_id: str, price: ModelPrice,
               usage: dict[str, Any] | None) -> dict[str, Any]:
    """The usage record of the request agrees with the usage the client got, and its cost and
    charge are the price rule applied to it."""
    record = gw.record(_key(client), request_id)
    assert record["status"] == "ok", record
    if usage is not None:
        prompt, cached, completion = usage_tokens(usage)
        assert (record["prompt_tokens"], record["cached_tokens"],
                record["completion_tokens"]) == (prompt, cached, completion)
    expected = price_rule(price, record["prompt_tokens"], record["cached_tokens"],
                          record["completion_tokens"])
    assert record["cost_nano_usd"] == expected
    assert record["charged_nano_usd"] == expected
    return record


# --- models ---------------------------------------------------------------------------------

def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert {"faregate-dev", "faregate-dev-embed"} <= set(ids)
    model = client.models.retrieve("faregate-dev")
    assert (model.id, model.object) == ("faregate-dev", "model")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


# --- chat -----------------------------------------------------------------------------------

def test_chat_non_stream(gw: Gateway, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="faregate-dev", messages=MESSAGES, max_tokens=20)
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content
    assert completion.usage is not None
    record = check_cost(gw, client, completion._request_id or "", DEV_CHAT_PRICE,
                        completion.usage.model_dump())
    assert record["request_id"] == raw.headers["x-request-id"]
    assert int(raw.headers["x-faregate-cost-nano-usd"]) == record["cost_nano_usd"]
    assert int(raw.headers["x-faregate-charged-nano-usd"]) == record["charged_nano_usd"]
    assert record["streamed"] is False and record["usage_source"] == "upstream"


def test_chat_stream_without_usage(gw: Gateway, client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="faregate-dev", messages=MESSAGES,
                                            max_tokens=20, stream=True)
    chunks = list(stream)
    assert chunks and all(c.usage is None for c in chunks), "usage only when include_usage"
    assert all(c.choices for c in chunks), "no usage-only chunk"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text
    record = check_cost(gw, client, stream.response.headers["x-request-id"], DEV_CHAT_PRICE,
                        None)
    assert record["streamed"] is True and record["completion_tokens"] > 0


def test_chat_stream_with_usage(gw: Gateway, client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="faregate-dev", messages=MESSAGES,
                                            max_tokens=20, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    with_usage = [c for c in chunks if c.usage is not None]
    assert with_usage == [chunks[-1]] and chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None and usage.total_tokens == usage.prompt_tokens + \
        usage.completion_tokens
    check_cost(gw, client, stream.response.headers["x-request-id"], DEV_CHAT_PRICE,
               usage.model_dump())


def test_chat_n2(gw: Gateway, client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="faregate-dev", messages=MESSAGES,
                                                max_tokens=8, n=2)
    assert sorted(c.index for c in completion.choices) == [0, 1]
    assert completion.usage is not None
    check_cost(gw, client, completion._request_id or "", DEV_CHAT_PRICE,
               completion.usage.model_dump())


def test_chat_n2_stream(gw: Gateway, client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="faregate-dev", messages=MESSAGES,
                                            max_tokens=8, n=2, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert {c.choices[0].index for c in chunks if c.choices} == {0, 1}
    assert chunks[-1].usage is not None
    check_cost(gw, client, stream.response.headers["x-request-id"], DEV_CHAT_PRICE,
               chunks[-1].usage.model_dump())


def test_tools_and_response_format_are_accepted(gw: Gateway, client: openai.OpenAI) -> None:
    """Faregate does not rewrite or reject what it does not meter: tools, tool_choice,
    response_format, and other request fields pass through and the request succeeds."""
    completion = client.chat.completions.create(
        model="faregate-dev", messages=MESSAGES, max_completion_tokens=16, tools=TOOLS,
        tool_choice="auto", parallel_tool_calls=False, response_format=JSON_SCHEMA_FORMAT,
        temperature=0.2, top_p=0.9, seed=7, user="e2e", metadata={"suite": "e2e"},
        store=False, stop=["\n\n"], logit_bias={"50256": -100})
    assert completion.choices and completion.usage is not None
    check_cost(gw, client, completion._request_id or "", DEV_CHAT_PRICE,
               completion.usage.model_dump())
    stream = client.chat.completions.create(
        model="faregate-dev", messages=MESSAGES, max_tokens=16, tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        response_format={"type": "json_object"}, stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[-1].usage is not None


# --- embeddings, completions, responses ---------------------------------------------------

@pytest.mark.parametrize("inputs", ["the sea", ["the sea", "the sky", "the sand"]])
def test_embeddings(gw: Gateway, client: openai.OpenAI, inputs: Any) -> None:
    result = client.embeddings.create(model="faregate-dev-embed", input=inputs)
    n = 1 if isinstance(inputs, str) else len(inputs)
    assert [d.index for d in result.data] == list(range(n))
    assert all(len(d.embedding) > 0 and isinstance(d.embedding[0], float) for d in result.data)
    check_cost(gw, client, result._request_id or "", DEV_EMBED_PRICE, result.usage.model_dump())


def test_completions(gw: Gateway, client: openai.OpenAI) -> None:
    result = client.completions.create(model="faregate-dev", prompt="The sea is", max_tokens=9)
    assert result.object == "text_completion" and result.choices[0].text
    assert result.usage is not None
    check_cost(gw, client, result._request_id or "", DEV_CHAT_PRICE, result.usage.model_dump())


def test_completions_stream(gw: Gateway, client: openai.OpenAI) -> None:
    stream = client.completions.create(model="faregate-dev", prompt="The sea is", max_tokens=9,
                                       stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    assert all(c.usage is None for c in chunks[:-1])
    check_cost(gw, client, stream.response.headers["x-request-id"], DEV_CHAT_PRICE,
               chunks[-1].usage.model_dump())


def test_responses(gw: Gateway, client: openai.OpenAI) -> None:
    response = client.responses.create(model="faregate-dev", input="Tell me about the sea.",
                                       instructions="Be brief.", max_output_tokens=24)
    assert response.object == "response" and response.output_text
    assert response.usage is not None
    check_cost(gw, client, response._request_id or "", DEV_CHAT_PRICE,
               response.usage.model_dump())


def test_responses_stream(gw: Gateway, client: openai.OpenAI) -> None:
    stream = client.responses.create(model="faregate-dev", input="Tell me about the sea.",
                                     max_output_tokens=24, stream=True)
    events = list(stream)
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1]
    assert final.type in ("response.completed", "response.incomplete")
    assert final.response.usage is not None and deltas
    check_cost(gw, client, stream.response.headers["x-request-id"], DEV_CHAT_PRICE,
               final.response.usage.model_dump())


# --- the money, on both databases -----------------------------------------------------------

@dataclass
class Ledger:
    """What the client saw: (request id, price, usage or None) for every request."""

    seen: list[tuple[str, ModelPrice, dict[str, Any] | None]] = field(default_factory=list)

    def add(self, request_id: str | None, price: ModelPrice, usage: Any) -> None:
        assert request_id and request_id.startswith("req_")
        self.seen.append((request_id, price, usage.model_dump() if usage is not None else None))


def exercise_every_endpoint(client: openai.OpenAI, log: Ledger) -> None:
    c = client.chat.completions.create(model="faregate-dev", messages=MESSAGES, max_tokens=30)
    log.add(c._request_id, DEV_CHAT_PRICE, c.usage)
    c = client.chat.completions.create(model="faregate-dev", messages=MESSAGES, max_tokens=7,
                                       n=3, tools=TOOLS, response_format={"type": "text"})
    log.add(c._request_id, DEV_CHAT_PRICE, c.usage)
    s = client.chat.completions.create(model="faregate-dev", messages=MESSAGES, max_tokens=25,
                                       stream=True, stream_options={"include_usage": True})
    chunks = list(s)
    log.add(s.response.headers["x-request-id"], DEV_CHAT_PRICE, chunks[-1].usage)
    s = client.chat.completions.create(model="faregate-dev", messages=MESSAGES, max_tokens=25,
                                       stream=True)
    assert all(ch.usage is None for ch in s)
    log.add(s.response.headers["x-request-id"], DEV_CHAT_PRICE, None)
    e = client.embeddings.create(model="faregate-dev-embed", input=["one", "two", "three"])
    log.add(e._request_id, DEV_EMBED_PRICE, e.usage)
    t = client.completions.create(model="faregate-dev", prompt=["a", "b"], max_tokens=5)
    log.add(t._request_id, DEV_CHAT_PRICE, t.usage)
    ts = client.completions.create(model="faregate-dev", prompt="abc", max_tokens=5,
                                   stream=True, stream_options={"include_usage": True})
    tchunks = list(ts)
    log.add(ts.response.headers["x-request-id"], DEV_CHAT_PRICE, tchunks[-1].usage)
    r = client.responses.create(model="faregate-dev", input="hello", max_output_tokens=40)
    log.add(r._request_id, DEV_CHAT_PRICE, r.usage)
    rs = client.responses.create(model="faregate-dev", input="hello", max_output_tokens=40,
                                 stream=True)
    events = list(rs)
    log.add(rs.response.headers["x-request-id"], DEV_CHAT_PRICE, events[-1].response.usage)


def test_balance_decreases_by_exactly_the_costs(any_dep: Deployment, tmp_path: Path) -> None:
    dep = any_dep
    server = dep.start_server()
    gw = Gateway(dep, server)
    grant = 50_000_000  # $0.05
    user, key = gw.user(grant)
    log = Ledger()
    with gw.client(key) as client:
        for _ in range(2):
            exercise_every_endpoint(client, log)
        total = 0
        for request_id, price, usage in log.seen:
            total += check_cost(gw, client, request_id, price, usage)["charged_nano_usd"]
    assert total > 0
    dep.stop_all_servers()
    balance, held, leased = dep.balance(user)
    assert grant - balance == total
    assert (held, leased) == (0, 0)
    assert dep.verify() == []
    records = dep.query("SELECT COUNT(*), SUM(charged_nano) FROM usage_records")
    assert (int(records[0][0]), int(records[0][1])) == (len(log.seen), total)


def test_front_page_and_health(gw: Gateway) -> None:
    with gw.http() as http:
        page = http.get("/")
        health = http.get("/healthz")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert gw.url in page.text
    assert health.status_code == 200 and health.json() == {"status": "ok"}
