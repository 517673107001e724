"""How a stream's end is judged: a clean end without [DONE] after every choice finished is a
normal end (charged, no error event); a broken one is an upstream error."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.fixtures_gateway import Gateway, json_events, running_gateway, stream_raw

BODY = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 6, "stream": True,
        "stream_options": {"include_usage": True}}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(tmp_path_factory.mktemp("ends") / "fg", aliases={
            "no-done": "faregate-dev:no_done", "dies": "faregate-dev:die_after=2"}) as gateway:
        yield gateway


def test_clean_end_without_done_marker_is_a_normal_end(gw: Gateway) -> None:
    _, key = gw.user()
    resp, events = stream_raw(gw, "/v1/chat/completions", key, {**BODY, "model": "no-done"})
    assert events[-1] == b"[DONE]"  # Faregate still ends the stream the OpenAI way
    chunks = json_events(events)
    assert not any("error" in c for c in chunks)
    assert chunks[-1]["usage"]["completion_tokens"] == 6
    record = gw.record(key, resp.headers["x-request-id"])
    assert record["status"] == "ok" and record["charged_nano_usd"] > 0


def test_broken_stream_ends_with_an_error_event(gw: Gateway) -> None:
    _, key = gw.user()
    resp, events = stream_raw(gw, "/v1/chat/completions", key, {**BODY, "model": "dies"})
    chunks = json_events(events)
    assert b"[DONE]" not in events
    assert chunks[-1]["error"]["type"] == "server_error"
    record = gw.record(key, resp.headers["x-request-id"])
    assert record["status"] == "upstream_error"
    assert record["completion_tokens"] >= 1 and record["usage_source"] == "local"


def test_upstream_credential_errors_are_not_echoed(tmp_path_factory: pytest.TempPathFactory
                                                   ) -> None:
    with running_gateway(tmp_path_factory.mktemp("cred") / "fg",
                         aliases={"locked": "faregate-dev:fail=401"}) as gw:
        _, key = gw.user()
        resp = gw.post("/v1/chat/completions", key,
                       {"model": "locked", "messages": [{"role": "user", "content": "x"}]})
        assert resp.status_code == 502
        assert resp.json()["error"]["code"] == "upstream_error"
        assert gw.no_record(key, resp.headers["x-request-id"]) or \
            gw.record(key, resp.headers["x-request-id"])["charged_nano_usd"] == 0
