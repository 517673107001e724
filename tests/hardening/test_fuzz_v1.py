"""Property-based fuzzing of the /v1 request parsing against one real server: random JSON
values, bodies built from each endpoint's fields with values of any type, and broken JSON.
Whatever comes in, the answer is never a 5xx; a refusal is a 4xx with OpenAI's error object,
creates no usage record and leaves the balance as it was. (A body that happens to be a valid
request is served and charged as usual: that is allowed.)"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faregate.identity.users import User
from tests.e2e.fixtures_gateway import Gateway, running_gateway

pytestmark = pytest.mark.timeout(300)

# FAREGATE_TEST_FUZZ_SCALE=10 (say) runs ten times the examples, for a longer hunt by hand.
EXAMPLES = 200 * int(os.environ.get("FAREGATE_TEST_FUZZ_SCALE", "1"))
ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses")
MODELS = ("faregate-dev", "faregate-dev-embed", "faregate-dev-pro", "gpt-nonexistent", "")

_scalar = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats() | st.text(max_size=12))
ANY_JSON = st.recursive(_scalar, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                        max_leaves=10)
_message = st.fixed_dictionaries({}, optional={
    "role": st.sampled_from(["user", "system", "assistant", "tool"]) | ANY_JSON,
    "content": st.text(max_size=20) | ANY_JSON,
    "name": ANY_JSON, "tool_calls": ANY_JSON})
_small_int = st.integers(min_value=-3, max_value=200) | ANY_JSON
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "model": st.sampled_from(MODELS) | ANY_JSON,
    "messages": st.lists(_message | ANY_JSON, max_size=3) | ANY_JSON,
    "prompt": st.text(max_size=20) | st.lists(st.text(max_size=8) | st.integers(0, 50000),
                                              max_size=3) | ANY_JSON,
    "input": st.text(max_size=20) | st.lists(st.text(max_size=8), max_size=3) | ANY_JSON,
    "stream": st.booleans() | ANY_JSON,
    "stream_options": st.fixed_dictionaries({}, optional={"include_usage": ANY_JSON})
    | ANY_JSON,
    "max_tokens": _small_int, "max_completion_tokens": _small_int,
    "max_output_tokens": _small_int, "n": _small_int, "best_of": _small_int,
    "temperature": ANY_JSON, "tools": ANY_JSON, "user": ANY_JSON, "dimensions": ANY_JSON,
    "encoding_format": st.sampled_from(["float", "base64"]) | ANY_JSON,
    "previous_response_id": ANY_JSON, "instructions": ANY_JSON,
}


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()  # NaN/Infinity: not JSON, on purpose


# A valid request per endpoint, which the strategies below spoil a field or three of.
VALID: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"model": "faregate-dev", "max_tokens": 5,
                             "messages": [{"role": "user", "content": "hi"}]},
    "/v1/completions": {"model": "faregate-dev", "prompt": "hi", "max_tokens": 5},
    "/v1/embeddings": {"model": "faregate-dev-embed", "input": "hi"},
    "/v1/responses": {"model": "faregate-dev", "input": "hi", "max_output_tokens": 5},
}
_change = st.sampled_from(sorted(FIELDS)).flatmap(
    lambda name: st.tuples(st.just(name), FIELDS[name]))


def _spoiled(valid: dict[str, Any], changes: list[tuple[str, Any]], drop: set[str]
             ) -> dict[str, Any]:
    body = {k: v for k, v in valid.items() if k not in drop}
    body.update(changes)
    return body


def _body_for(endpoint: str) -> st.SearchStrategy[bytes]:
    valid = VALID[endpoint]
    near = st.builds(_spoiled, st.just(valid), st.lists(_change, min_size=1, max_size=3),
                     st.sets(st.sampled_from(sorted(valid)), max_size=1)).map(_dumps)
    shaped = near | st.fixed_dictionaries({}, optional=FIELDS).map(_dumps)
    anything = ANY_JSON.map(_dumps)
    truncated = st.tuples(shaped, st.integers(min_value=0, max_value=60)).map(
        lambda t: t[0][:t[1]])
    junk = st.binary(max_size=40)
    return st.one_of(shaped, shaped, anything, truncated, junk)


REQUESTS = st.sampled_from(ENDPOINTS).flatmap(
    lambda endpoint: st.tuples(st.just(endpoint), _body_for(endpoint)))


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(tmp_path_factory.mktemp("fuzz") / "fg") as gateway:
        yield gateway
        assert gateway.dep.verify() == []


@pytest.fixture(scope="module")
def customer(gw: Gateway) -> tuple[User, str]:
    return gw.user(1_000_000_000)


def _assert_openai_error(resp: httpx2.Response, what: str) -> None:
    body = resp.json()
    assert isinstance(body, dict) and set(body) == {"error"}, what
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, what
    assert isinstance(error["message"], str) and error["message"], what
    assert isinstance(error["type"], str), what
    assert error["param"] is None or isinstance(error["param"], str), what
    assert error["code"] is None or isinstance(error["code"], str), what


def test_v1_parsing_never_fails_and_never_charges_a_refusal(
        gw: Gateway, customer: tuple[User, str]) -> None:
    user, key = customer
    seen: dict[int, int] = {}
    with gw.http(headers={"authorization": f"Bearer {key}",
                          "content-type": "application/json"}) as http:

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(REQUESTS)
        def check(request: tuple[str, bytes]) -> None:
            endpoint, body = request
            before = gw.dep.balance(user)[0]
            resp = http.post(endpoint, content=body)
            what = f"{endpoint} {body[:300]!r} -> {resp.status_code} {resp.text[:300]}"
            seen[resp.status_code] = seen.get(resp.status_code, 0) + 1
            assert resp.status_code < 500, what
            assert resp.headers["x-request-id"].startswith("req_"), what
            if resp.status_code >= 400:
                _assert_openai_error(resp, what)
                assert gw.dep.balance(user)[0] == before, what
                assert gw.no_record(key, resp.headers["x-request-id"]), what
            else:
                assert resp.status_code == 200, what

        check()
    print("fuzz statuses:", seen)
    assert sum(n for status, n in seen.items() if status >= 400) > 100, seen

