"""Behaviour options encoded in the model name: ``faregate-dev:opt,opt=N``."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TypeVar

import aiohttp
import openai
import pytest
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam
from openai.types.responses import ResponseStreamEvent

T = TypeVar("T")

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "options please"}]


def _drain(stream: Iterable[T], into: list[T]) -> None:
    for item in stream:
        into.append(item)


async def _adrain(resp: aiohttp.ClientResponse, into: list[bytes]) -> None:
    async for chunk in resp.content.iter_any():
        into.append(chunk)


def test_overshoot_reports_extra_tokens(client: openai.OpenAI) -> None:
    model = "faregate-dev:overshoot=5"
    completion = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=3)
    [choice] = completion.choices
    assert completion.model == model
    assert choice.finish_reason == "length"
    assert len((choice.message.content or "").split(" ")) == 8
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 8


def test_overshoot_streaming(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="faregate-dev:overshoot=2",
        messages=MESSAGES,
        max_tokens=4,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    pieces = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) == 6
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 6


def test_die_after_breaks_the_stream(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="faregate-dev:die_after=3",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    received: list[ChatCompletionChunk] = []
    with pytest.raises(openai.APIConnectionError):
        _drain(stream, received)
    contents = [c for c in received if c.choices and c.choices[0].delta.content]
    assert len(contents) == 3
    assert all(c.choices and c.choices[0].finish_reason is None for c in received)


async def test_die_after_seen_by_aiohttp(devmodel_url: str) -> None:
    body = {"model": "faregate-dev:die_after=2", "messages": MESSAGES, "stream": True}
    received: list[bytes] = []
    url = f"{devmodel_url}/v1/chat/completions"
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as resp:
        assert resp.status == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        with pytest.raises(aiohttp.ClientPayloadError):
            await _adrain(resp, received)
    raw = b"".join(received)
    assert raw.count(b"data: ") == 3  # role chunk + 2 content chunks
    assert b"[DONE]" not in raw


def test_die_after_responses_stream(client: openai.OpenAI) -> None:
    stream = client.responses.create(model="faregate-dev:die_after=1", input="hi", stream=True)
    received: list[ResponseStreamEvent] = []
    with pytest.raises(openai.APIConnectionError):
        _drain(stream, received)
    events = [e.type for e in received]
    assert events.count("response.output_text.delta") == 1
    assert "response.completed" not in events


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, openai.InternalServerError),
        (429, openai.RateLimitError),
        (401, openai.AuthenticationError),
        (400, openai.BadRequestError),
    ],
)
def test_fail_answers_the_status(
    client: openai.OpenAI, status: int, error: type[openai.APIStatusError]
) -> None:
    with pytest.raises(error) as info:
        client.chat.completions.create(model=f"faregate-dev:fail={status}", messages=MESSAGES)
    assert info.value.status_code == status
    assert isinstance(info.value.body, dict)
    assert set(info.value.body) == {"message", "type", "param", "code"}


def test_fail_applies_to_streams_and_embeddings(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="faregate-dev:fail=503",
            messages=MESSAGES,
            stream=True,
        )
    with pytest.raises(openai.InternalServerError):
        client.embeddings.create(model="faregate-dev-embed:fail=500", input="x")


def test_no_usage_suppresses_only_the_stream_usage(client: openai.OpenAI) -> None:
    model = "faregate-dev:no_usage"
    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)
    completion = client.chat.completions.create(model=model, messages=MESSAGES)
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0
    final = [
        e
        for e in client.responses.create(model=model, input="hi", stream=True)
        if e.type == "response.completed"
    ]
    assert len(final) == 1
    assert final[0].response.usage is None


def test_slow_first_byte(client: openai.OpenAI) -> None:
    started = time.monotonic()
    completion = client.chat.completions.create(
        model="faregate-dev:slow_first_byte_ms=200,no_usage",
        messages=MESSAGES,
    )
    assert time.monotonic() - started >= 0.2
    assert completion.choices[0].message.content


def test_options_do_not_change_the_text(client: openai.OpenAI) -> None:
    texts = {
        client.chat.completions.create(model=m, messages=MESSAGES).choices[0].message.content
        for m in ("faregate-dev", "faregate-dev:no_usage", "faregate-dev-custom:overshoot=1")
    }
    assert len(texts) == 1


@pytest.mark.parametrize(
    "model", ["faregate-dev:bogus", "faregate-dev:fail=200", "faregate-dev:overshoot=x"]
)
def test_bad_options_are_400_on_model(client: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=model, messages=MESSAGES)
    assert isinstance(info.value.body, dict)
    assert info.value.body["param"] == "model"
