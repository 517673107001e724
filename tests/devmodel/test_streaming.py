"""Streaming chat completions through the SDK: chunk order, usage chunk, n choices."""

from __future__ import annotations

from typing import Any

import openai
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "stream me something"}]


def _stream(client: openai.OpenAI, **kwargs: Any) -> list[ChatCompletionChunk]:
    stream = client.chat.completions.create(
        model="faregate-dev", messages=MESSAGES, stream=True, **kwargs
    )
    return list(stream)


def _content(chunks: list[ChatCompletionChunk], index: int = 0) -> list[str]:
    return [
        c.choices[0].delta.content
        for c in chunks
        if c.choices and c.choices[0].index == index and c.choices[0].delta.content
    ]


def test_stream_without_usage(client: openai.OpenAI) -> None:
    chunks = _stream(client)
    first, *middle, last = chunks
    assert first.choices[0].delta.role == "assistant"
    assert first.choices[0].delta.content == ""
    assert all(c.choices for c in chunks), "no usage chunk unless asked"
    assert all("usage" not in c.model_fields_set for c in chunks)
    assert all(c.choices[0].finish_reason is None for c in [first, *middle])
    assert last.choices[0].finish_reason == "stop"
    assert last.choices[0].delta.content is None
    assert len({c.id for c in chunks}) == 1
    assert all(c.object == "chat.completion.chunk" and c.model == "faregate-dev" for c in chunks)
    plain = client.chat.completions.create(model="faregate-dev", messages=MESSAGES)
    assert "".join(_content(chunks)) == plain.choices[0].message.content
    assert len(middle) == len(_content(chunks))  # one chunk per piece


def test_stream_with_usage(client: openai.OpenAI) -> None:
    chunks = _stream(client, stream_options={"include_usage": True}, max_tokens=5)
    *body, usage_chunk = chunks
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.completion_tokens == len(_content(chunks)) == 5
    assert usage_chunk.usage.prompt_tokens == 5 + 3  # ceil(19 / 4) + 3
    assert usage_chunk.usage.total_tokens == 13
    assert all("usage" in c.model_fields_set and c.usage is None for c in body)
    assert body[-1].choices[0].finish_reason == "length"


def test_stream_n_choices(client: openai.OpenAI) -> None:
    chunks = _stream(client, n=2, stream_options={"include_usage": True})
    texts = ["".join(_content(chunks, i)) for i in (0, 1)]
    plain = client.chat.completions.create(model="faregate-dev", messages=MESSAGES, n=2)
    assert texts == [c.message.content for c in plain.choices]
    finishes = [c.choices[0] for c in chunks if c.choices and c.choices[0].finish_reason]
    assert sorted(c.index for c in finishes) == [0, 1]
    roles = [c.choices[0].index for c in chunks if c.choices and c.choices[0].delta.role]
    assert roles == [0, 1]
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.completion_tokens == len(_content(chunks, 0)) + len(_content(chunks, 1))
