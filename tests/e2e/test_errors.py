"""Errors, as OpenAI clients expect them: authentication (unknown, missing, revoked keys), model
not found, validation (each naming its field in `param`), insufficient quota (no SDK retry), a
small balance lowering the output limit instead of refusing, upstream failures (no charge), and
a sweep of hostile request bodies that must never cause a 500 or a charge. Every response,
success or error, carries x-request-id."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from faregate.api_keys.service import revoke_key
from tests.e2e.fixtures_gateway import (
    DEV_CHAT_PRICE,
    DEV_EMBED_PRICE,
    Gateway,
    RequestCounter,
    price_rule,
    running_gateway,
)
from tests.harness import Deployment, free_port

pytestmark = pytest.mark.timeout(120)

FAIL_500 = "dev-fail-500"  # a standalone dev model answering HTTP 500
DEAD = "dead-model"  # an upstream at a port nobody listens on
MESSAGES: Any = [{"role": "user", "content": "Say hello."}]
CHAT = {"model": "faregate-dev", "messages": MESSAGES}


def _dead_upstream(dep: Deployment) -> None:
    dep.add_upstream("dead", f"http://127.0.0.1:{free_port()}/v1", {DEAD: "faregate-dev"},
                     DEV_CHAT_PRICE)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    # A high auth-failure budget: the few unknown keys here must not throttle later tests.
    with running_gateway(tmp_path_factory.mktemp("errors") / "fg",
                         aliases={FAIL_500: "faregate-dev:fail=500"}, setup=_dead_upstream,
                         FAREGATE_AUTH_FAILURES_PER_MINUTE="100000") as gateway:
        yield gateway


@pytest.fixture(scope="module")
def key(gw: Gateway) -> str:
    return gw.user()[1]


def error_of(resp: Any) -> dict[str, Any]:
    assert resp.headers.get("x-request-id", "").startswith("req_"), resp.headers
    body: dict[str, Any] = resp.json()
    assert set(body) == {"error"} and set(body["error"]) >= {"message", "type", "param", "code"}
    return body["error"]


# --- authentication -------------------------------------------------------------------------

def test_unknown_key(gw: Gateway) -> None:
    counter = RequestCounter()
    unknown = "sk-fg-" + "A1b2" * 10
    with counter.client(gw, unknown) as client, pytest.raises(openai.AuthenticationError) as err:
        client.chat.completions.create(model="faregate-dev", messages=MESSAGES)
    assert len(counter) == 1
    assert err.value.status_code == 401
    assert err.value.code == "invalid_api_key"
    assert err.value.type == "invalid_request_error"
    assert err.value.request_id and err.value.request_id.startswith("req_")
    assert unknown not in err.value.response.text, "the key is never echoed whole"


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Basic abc",
                                           "sk-fg-without-scheme"])
def test_missing_key(gw: Gateway, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    with gw.http() as http:
        resp = http.post("/v1/chat/completions", json=CHAT, headers=headers)
    assert resp.status_code == 401
    error = error_of(resp)
    assert error["type"] == "invalid_request_error"
    assert "didn't provide an API key" in error["message"]


def test_missing_key_code_is_null(gw: Gateway) -> None:
    with gw.http() as http:
        resp = http.post("/v1/chat/completions", json=CHAT)
    assert resp.status_code == 401
    assert error_of(resp)["code"] is None


def test_revoked_key_is_refused_within_two_seconds(gw: Gateway) -> None:
    user, _ = gw.user()
    key_id, key = gw.dep.new_key(user)
    with gw.client(key, max_retries=0) as client:
        client.models.list()  # the key is now in the server's cache
        client.chat.completions.create(model="faregate-dev", messages=MESSAGES,
                                       max_tokens=2)
        with gw.dep.engine.begin() as conn:
            revoke_key(conn, key_id)
        revoked_at = time.monotonic()
        deadline = revoked_at + 2.5
        refused: openai.AuthenticationError | None = None
        while time.monotonic() < deadline and refused is None:
            try:
                client.models.list()
            except openai.AuthenticationError as e:
                refused = e
            else:
                time.sleep(0.05)
    assert refused is not None, "a revoked key still worked 2.5 s later"
    assert refused.code == "invalid_api_key"
    with gw.client(key, max_retries=0) as client, pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="faregate-dev", messages=MESSAGES)


# --- not found, validation ------------------------------------------------------------------

def test_model_not_found(gw: Gateway, key: str) -> None:
    counter = RequestCounter()
    with counter.client(gw, key) as client, pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-nonexistent", messages=MESSAGES)
    assert len(counter) == 1
    assert err.value.code == "model_not_found"
    assert err.value.param == "model"
    assert "gpt-nonexistent" in err.value.message


def test_embedding_model_is_not_a_chat_model(gw: Gateway, key: str) -> None:
    resp = gw.post("/v1/chat/completions", key, {**CHAT, "model": "faregate-dev-embed"})
    assert resp.status_code == 404
    assert error_of(resp)["code"] == "model_not_found"


def test_unknown_route_and_method(gw: Gateway, key: str) -> None:
    with gw.http() as http:
        resp = http.post("/v1/chat/completion", json=CHAT,
                         headers={"Authorization": f"Bearer {key}"})
        assert resp.status_code == 404
        error_of(resp)
        resp = http.get("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"})
        assert resp.status_code == 405
        error_of(resp)


def test_malformed_json(gw: Gateway, key: str) -> None:
    resp = gw.post("/v1/chat/completions", key, content=b'{"model": "faregate-dev", "mess')
    assert resp.status_code == 400
    error = error_of(resp)
    assert error["type"] == "invalid_request_error"
    assert key not in resp.text


BAD_FIELDS = [
    ("missing model", {"messages": MESSAGES}, "model"),
    ("missing messages", {"model": "faregate-dev"}, "messages"),
    ("null messages", {"model": "faregate-dev", "messages": None}, "messages"),
    ("empty messages", {"model": "faregate-dev", "messages": []}, "messages"),
    ("model not a string", {"model": 7, "messages": MESSAGES}, "model"),
    ("messages not an array", {**CHAT, "messages": "hello"}, "messages"),
    ("n is a string", {**CHAT, "n": "2"}, "n"),
    ("n is zero", {**CHAT, "n": 0}, "n"),
    ("n too large", {**CHAT, "n": 129}, "n"),
    ("max_tokens negative", {**CHAT, "max_tokens": -1}, "max_tokens"),
    ("max_tokens a float", {**CHAT, "max_tokens": 2.5}, "max_tokens"),
    ("max_tokens a bool", {**CHAT, "max_tokens": True}, "max_tokens"),
    ("max_completion_tokens zero", {**CHAT, "max_completion_tokens": 0},
     "max_completion_tokens"),
    ("stream is a string", {**CHAT, "stream": "yes"}, "stream"),
    ("stream_options without stream", {**CHAT, "stream_options": {"include_usage": True}},
     "stream_options"),
    ("stream_options not an object", {**CHAT, "stream": True, "stream_options": True},
     "stream_options"),
    ("max_tokens above the model maximum", {**CHAT, "max_tokens": 1_000_000}, "max_tokens"),
    ("max_completion_tokens above the model maximum",
     {**CHAT, "max_completion_tokens": 40_000}, "max_completion_tokens"),
]


@pytest.mark.parametrize(("body", "param"), [(b, p) for _, b, p in BAD_FIELDS],
                         ids=[name for name, _, _ in BAD_FIELDS])
def test_bad_field_is_named(gw: Gateway, key: str, body: dict[str, Any], param: str) -> None:
    counter = RequestCounter()
    with counter.client(gw, key) as client, pytest.raises(openai.BadRequestError) as err:
        client.post("/chat/completions", body=body, cast_to=object)
    assert len(counter) == 1
    assert err.value.status_code == 400
    assert err.value.param == param, err.value.body
    assert err.value.type == "invalid_request_error"
    assert key not in err.value.response.text
    assert err.value.request_id and err.value.request_id.startswith("req_")


OTHER_ENDPOINTS = [
    ("/v1/completions", {"model": "faregate-dev"}, "prompt"),
    ("/v1/completions", {"model": "faregate-dev", "prompt": 5}, "prompt"),
    ("/v1/completions", {"model": "faregate-dev", "prompt": "x", "best_of": 21}, "best_of"),
    ("/v1/embeddings", {"model": "faregate-dev-embed"}, "input"),
    ("/v1/embeddings", {"model": "faregate-dev-embed", "input": ""}, "input"),
    ("/v1/embeddings", {"model": "faregate-dev-embed", "input": {"a": 1}}, "input"),
    ("/v1/responses", {"model": "faregate-dev"}, "input"),
    ("/v1/responses", {"model": "faregate-dev", "input": "x", "max_output_tokens": -5},
     "max_output_tokens"),
    ("/v1/responses", {"model": "faregate-dev", "input": "x", "stream": 1}, "stream"),
]


@pytest.mark.parametrize(("path", "body", "param"), OTHER_ENDPOINTS)
def test_bad_field_other_endpoints(gw: Gateway, key: str, path: str, body: dict[str, Any],
                                   param: str) -> None:
    resp = gw.post(path, key, body)
    assert resp.status_code == 400, resp.text
    assert error_of(resp)["param"] == param
    assert key not in resp.text


# --- money: exhausted, small, upstream failures ---------------------------------------------

def test_exhausted_balance_is_not_retried(gw: Gateway) -> None:
    user, key = gw.user(grant_nano=0)
    counter = RequestCounter()
    with counter.client(gw, key) as client, pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="faregate-dev", messages=MESSAGES)
    assert len(counter) == 1, "the SDK retried a 429 that retrying cannot fix"
    assert err.value.status_code == 429
    assert err.value.code == "insufficient_quota"
    assert err.value.type == "insufficient_quota"
    assert err.value.response.headers["x-should-retry"] == "false"
    assert "retry-after" not in err.value.response.headers
    assert err.value.request_id and err.value.request_id.startswith("req_")
    assert gw.dep.balance(user)[0] == 0


def test_used_up_balance_is_refused(gw: Gateway) -> None:
    """A balance that covered a request once is refused once too small for the next prompt."""
    grant = 100_000  # covers a short prompt (reserved at one token per byte) and a token
    user, key = gw.user(grant_nano=grant)
    resp = gw.post("/v1/chat/completions", key, {**CHAT, "max_tokens": 1})
    assert resp.status_code == 200, resp.text
    charged = int(resp.headers["x-faregate-charged-nano-usd"])
    big = {**CHAT, "messages": [{"role": "user", "content": "word " * 2000}]}
    resp = gw.post("/v1/chat/completions", key, big)
    assert resp.status_code == 429
    assert error_of(resp)["code"] == "insufficient_quota"
    assert resp.headers["x-should-retry"] == "false"
    assert gw.dep.balance(user)[0] == grant - charged


def test_small_balance_lowers_the_output_limit(gw: Gateway) -> None:
    grant = 300_000  # $0.0003: the prompt and ~100 output tokens, not the default 4096
    user, key = gw.user(grant_nano=grant)
    with gw.client(key) as client:
        raw = client.chat.completions.with_raw_response.create(model="faregate-dev",
                                                               messages=MESSAGES)
    completion = raw.parse()
    limit = int(raw.headers["x-faregate-output-limit"])
    assert 1 <= limit < 4096
    assert completion.usage is not None
    assert completion.usage.completion_tokens <= limit
    charged = int(raw.headers["x-faregate-charged-nano-usd"])
    assert charged == price_rule(DEV_CHAT_PRICE, completion.usage.prompt_tokens, 0,
                                 completion.usage.completion_tokens)
    assert 0 < charged <= grant
    assert gw.dep.balance(user)[0] == grant - charged


def test_small_balance_lowers_a_stream_limit(gw: Gateway) -> None:
    user, key = gw.user(grant_nano=300_000)
    with gw.client(key) as client:
        stream = client.chat.completions.create(model="faregate-dev", messages=MESSAGES,
                                                max_tokens=3000, stream=True,
                                                stream_options={"include_usage": True})
        chunks = list(stream)
    limit = int(stream.response.headers["x-faregate-output-limit"])
    assert 1 <= limit < 3000
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens <= limit
    balance = gw.dep.balance(user)[0]
    assert 300_000 - balance == price_rule(DEV_CHAT_PRICE, usage.prompt_tokens, 0,
                                           usage.completion_tokens)


def test_upstream_500_is_502_and_free(gw: Gateway) -> None:
    user, key = gw.user()
    before = gw.dep.balance(user)[0]
    counter = RequestCounter()
    with counter.client(gw, key) as client, \
            pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(model=FAIL_500, messages=MESSAGES)
    assert err.value.status_code == 502
    assert err.value.code == "upstream_error"
    assert len(counter) == 3, "502 is retryable: the SDK tried three times"
    assert gw.dep.balance(user)[0] == before, "failed attempts are not charged"
    record = gw.record(key, err.value.request_id or "")
    assert record["status"] == "upstream_error"
    assert (record["cost_nano_usd"], record["charged_nano_usd"]) == (0, 0)


def test_upstream_500_stream_is_502_and_free(gw: Gateway, key: str) -> None:
    resp = gw.post("/v1/chat/completions", key, {**CHAT, "model": FAIL_500, "stream": True})
    assert resp.status_code == 502
    assert error_of(resp)["code"] == "upstream_error"
    assert gw.no_record(key, resp.headers["x-request-id"])


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_unreachable_is_503_and_free(gw: Gateway, stream: bool) -> None:
    user, key = gw.user()
    before = gw.dep.balance(user)[0]
    with gw.client(key, max_retries=0) as client, \
            pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(model=DEAD, messages=MESSAGES, stream=stream)
    assert err.value.status_code == 503
    assert err.value.code == "upstream_unavailable"
    assert err.value.request_id and err.value.request_id.startswith("req_")
    assert gw.dep.balance(user)[0] == before
    assert gw.no_record(key, err.value.request_id)


# --- hostile input --------------------------------------------------------------------------

JUNK: list[Any] = [None, True, False, 0, -1, 1, 2**31, 2**63 - 1, -(2**63), 1.5, -0.0, 1e308,
                   "", "x", "faregate-dev", "\u0000", "\ud7ff\ue000\U0001f600", "a" * 5000,
                   [], [None], [[[[[]]]]], {}, {"role": "user"}, {"a": {"b": {"c": [1, {}]}}},
                   [{"role": "user", "content": {"nested": [1, 2, {"x": None}]}}],
                   [{"role": 5, "content": "x"}], [{"content": "no role"}], ["just a string"],
                   [{"role": "user", "content": [{"type": "text", "text": 5}]}]]
FIELDS = {
    "/v1/chat/completions": ["model", "messages", "n", "max_tokens", "max_completion_tokens",
                             "stream", "stream_options", "tools", "temperature", "logit_bias",
                             "response_format", "stop"],
    "/v1/completions": ["model", "prompt", "n", "best_of", "max_tokens", "stream",
                        "stream_options", "echo", "suffix"],
    "/v1/embeddings": ["model", "input", "encoding_format", "dimensions"],
    "/v1/responses": ["model", "input", "instructions", "max_output_tokens", "stream", "tools",
                      "previous_response_id"],
}
VALID = {
    "/v1/chat/completions": {"model": "faregate-dev", "max_tokens": 4, "messages": MESSAGES},
    "/v1/completions": {"model": "faregate-dev", "prompt": "hi", "max_tokens": 4},
    "/v1/embeddings": {"model": "faregate-dev-embed", "input": "hi"},
    "/v1/responses": {"model": "faregate-dev", "input": "hi", "max_output_tokens": 4},
}
RAW_BODIES: list[bytes] = [
    b"", b" ", b"{", b"}", b"null", b"true", b"0", b"-1", b'"a string"', b"[]", b"[{}]",
    b"{}", b'{"model": null}', b"\xff\xfe\xfd", b'{"model": "\xff\xfe"}', b"\x00" * 64,
    b'{"model": "faregate-dev", "messages": [{"role": "user", "content": "\\ud800"}]}',
    b'{"model": "faregate-dev", "max_tokens": 1' + b"0" * 40 + b', "messages": []}',
    b'{"model": "faregate-dev", "max_tokens": 1e400, "messages": []}',
    b'{"model": "faregate-dev", "n": NaN}', b'{"model": "faregate-dev", "n": Infinity}',
    b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 5000 + b"1" + b"}" * 5000,
    b'{"model": "faregate-dev", "model": 5}', b"model=faregate-dev&messages=hi",
    b"\xef\xbb\xbf{}", json.dumps({"model": "x" * 200_000, "messages": MESSAGES}).encode(),
    json.dumps({"model": "faregate-dev\n\r\t", "messages": MESSAGES}).encode(),
    json.dumps({"model": "../../etc/passwd", "messages": MESSAGES}).encode(),
    json.dumps({"model": "faregate-dev", "messages": [{"role": "user"}] * 5000}).encode(),
]


def hostile_requests(rng: random.Random, count: int) -> list[tuple[str, bytes, dict[str, str]]]:
    """(path, body, extra headers): the raw list, then random corruptions of valid bodies."""
    paths = list(VALID)
    out: list[tuple[str, bytes, dict[str, str]]] = [
        (paths[i % len(paths)], body, {}) for i, body in enumerate(RAW_BODIES)]
    content_types = [{}, {"Content-Type": "text/plain"}, {"Content-Type": "multipart/form-data"},
                     {"Content-Type": "application/x-www-form-urlencoded"},
                     {"Content-Type": "application/json; charset=latin-1"}]
    while len(out) < count:
        path = rng.choice(paths)
        body: dict[str, Any] = json.loads(json.dumps(VALID[path]))
        for _ in range(rng.randint(1, 3)):
            name = rng.choice(FIELDS[path])
            if rng.random() < 0.2:
                body.pop(name, None)
            else:
                body[name] = rng.choice(JUNK)
        out.append((path, json.dumps(body).encode(), rng.choice(content_types)))
    return out


def test_hostile_input_never_500_never_charged(gw: Gateway) -> None:
    grant = 100_000_000
    user, key = gw.user(grant)
    statuses: dict[int, int] = {}
    charged = 0
    with gw.http() as http:
        for path, body, extra in hostile_requests(random.Random(20261127), 220):
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                       **extra}
            resp = http.post(path, content=body, headers=headers)
            what = f"{path} {body[:200]!r} -> {resp.status_code} {resp.text[:300]}"
            statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
            assert resp.status_code < 500, what
            assert resp.headers.get("x-request-id", "").startswith("req_"), what
            assert key not in resp.text, what
            if resp.status_code == 200:
                # Junk that is still a valid request is served and charged its exact cost.
                record = gw.record(key, resp.headers["x-request-id"])
                price = DEV_EMBED_PRICE if path == "/v1/embeddings" else DEV_CHAT_PRICE
                assert record["charged_nano_usd"] == price_rule(
                    price, record["prompt_tokens"], record["cached_tokens"],
                    record["completion_tokens"]), what
                charged += record["charged_nano_usd"]
            else:
                error_of(resp)
                assert gw.no_record(key, resp.headers["x-request-id"]), what
    print("hostile sweep statuses:", statuses)
    assert sum(n for s, n in statuses.items() if s != 200) >= 150, statuses
    assert gw.dep.balance(user)[0] == grant - charged, "only served requests are charged"


def test_twenty_megabyte_body_is_413(gw: Gateway) -> None:
    user, key = gw.user()
    before = gw.dep.balance(user)[0]
    body = json.dumps({"model": "faregate-dev", "messages": [
        {"role": "user", "content": "a" * (20 * 1024 * 1024)}]}).encode()
    resp = gw.post("/v1/chat/completions", key, content=body)
    assert resp.status_code == 413
    assert error_of(resp)["code"] == "request_too_large"
    assert gw.dep.balance(user)[0] == before


def test_every_response_has_a_request_id(gw: Gateway, key: str) -> None:
    with gw.http() as http:
        auth = {"Authorization": f"Bearer {key}"}
        responses = [
            http.get("/v1/models", headers=auth),
            http.get("/v1/models/faregate-dev", headers=auth),
            http.get("/v1/models/nope", headers=auth),
            http.get("/v1/models"),
            http.post("/v1/chat/completions", json={**CHAT, "max_tokens": 2}, headers=auth),
            http.post("/v1/embeddings", json={"model": "faregate-dev-embed", "input": "x"},
                      headers=auth),
            http.post("/v1/chat/completions", json={**CHAT, "model": FAIL_500}, headers=auth),
            http.post("/v1/chat/completions", json={**CHAT, "model": DEAD}, headers=auth),
            http.delete("/v1/chat/completions", headers=auth),
            http.get("/v1/faregate/requests/req_nope", headers=auth),
        ]
        with http.stream("POST", "/v1/chat/completions", headers=auth,
                         json={**CHAT, "stream": True, "max_tokens": 2}) as streamed:
            streamed.read()
        responses.append(streamed)
    ids = [r.headers.get("x-request-id", "") for r in responses]
    assert all(i.startswith("req_") and len(i) == 36 for i in ids), ids
    assert len(set(ids)) == len(ids)
