"""Chat completions through the official SDK (non-streaming)."""

from __future__ import annotations

import math
from typing import Any

import openai
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "hello world"},
]


def _chat(client: openai.OpenAI, **kwargs: Any) -> ChatCompletion:
    kwargs.setdefault("messages", MESSAGES)
    completion: ChatCompletion = client.chat.completions.create(
        model="faregate-dev", stream=False, **kwargs
    )
    return completion


def test_shape_and_usage(client: openai.OpenAI) -> None:
    completion = _chat(client)
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "faregate-dev"
    assert completion.system_fingerprint
    assert isinstance(completion.created, int)
    [choice] = completion.choices
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.refusal is None
    assert choice.logprobs is None
    assert choice.finish_reason == "stop"
    content = choice.message.content
    assert content
    assert content.endswith(".")
    pieces = content.split(" ")
    assert 8 <= len(pieces) <= 40
    usage = completion.usage
    assert usage is not None
    # prompt rule: ceil(utf8 bytes / 4) + 3 per message
    expected_prompt = (math.ceil(9 / 4) + 3) + (math.ceil(11 / 4) + 3)
    assert usage.prompt_tokens == expected_prompt
    assert usage.completion_tokens == len(pieces)
    assert usage.total_tokens == expected_prompt + len(pieces)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 0


def test_deterministic(client: openai.OpenAI) -> None:
    first = _chat(client).choices[0].message.content
    second = _chat(client).choices[0].message.content
    assert first == second
    other = _chat(client, messages=[{"role": "user", "content": "something else"}])
    assert other.choices[0].message.content != first


def test_content_parts_count_like_strings(client: openai.OpenAI) -> None:
    parts = [{"role": "user", "content": [{"type": "text", "text": "hello world"}]}]
    plain = [{"role": "user", "content": "hello world"}]
    a, b = _chat(client, messages=parts), _chat(client, messages=plain)
    assert a.choices[0].message.content == b.choices[0].message.content
    assert a.usage is not None
    assert b.usage is not None
    assert a.usage.prompt_tokens == b.usage.prompt_tokens == math.ceil(11 / 4) + 3


def test_n_choices(client: openai.OpenAI) -> None:
    completion = _chat(client, n=2)
    assert [c.index for c in completion.choices] == [0, 1]
    texts = [c.message.content or "" for c in completion.choices]
    assert texts[0] != texts[1]
    assert texts[0] == _chat(client).choices[0].message.content
    assert completion.usage is not None
    assert completion.usage.completion_tokens == sum(len(t.split(" ")) for t in texts)


def test_max_tokens_cuts_with_length(client: openai.OpenAI) -> None:
    full = _chat(client).choices[0].message.content or ""
    for param in ("max_tokens", "max_completion_tokens"):
        cut = _chat(client, **{param: 3})
        [choice] = cut.choices
        assert choice.finish_reason == "length"
        assert choice.message.content == " ".join(full.split(" ")[:3])
        assert cut.usage is not None
        assert cut.usage.completion_tokens == 3


def test_generous_limit_stops_naturally(client: openai.OpenAI) -> None:
    completion = _chat(client, max_tokens=1000)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.content == _chat(client).choices[0].message.content


def test_stop_sequence(client: openai.OpenAI) -> None:
    full = _chat(client).choices[0].message.content or ""
    stop = " " + full.split(" ")[2]
    expected = full[: full.index(stop)]  # the first occurrence, maybe inside a longer word
    completion = _chat(client, stop=[stop, "never-there"])
    [choice] = completion.choices
    assert choice.finish_reason == "stop"
    assert choice.message.content == expected
    assert completion.usage is not None
    assert completion.usage.completion_tokens == len(expected.split(" "))
