"""Legacy text completions through the SDK."""

from __future__ import annotations

import openai


def test_default_max_tokens_is_16(client: openai.OpenAI) -> None:
    completion = client.completions.create(model="faregate-dev", prompt="Once upon a time")
    assert completion.object == "text_completion"
    assert completion.id.startswith("cmpl-")
    assert completion.model == "faregate-dev"
    [choice] = completion.choices
    pieces = choice.text.split(" ")
    assert len(pieces) <= 16
    assert choice.finish_reason == ("length" if len(pieces) == 16 else "stop")
    assert choice.logprobs is None
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 4  # ceil(16 / 4)
    assert completion.usage.completion_tokens == len(pieces)


def test_limits_n_and_determinism(client: openai.OpenAI) -> None:
    a = client.completions.create(model="faregate-dev", prompt="abc", max_tokens=2, n=3)
    b = client.completions.create(model="faregate-dev", prompt="abc", max_tokens=2, n=3)
    assert [c.text for c in a.choices] == [c.text for c in b.choices]
    assert [c.index for c in a.choices] == [0, 1, 2]
    assert all(c.finish_reason == "length" and len(c.text.split(" ")) == 2 for c in a.choices)
    assert a.usage is not None
    assert a.usage.completion_tokens == 6
    assert a.usage.prompt_tokens == 1


def test_batch_and_token_prompts(client: openai.OpenAI) -> None:
    completion = client.completions.create(
        model="faregate-dev", prompt=[[1, 2, 3, 4, 5], [9]], max_tokens=100
    )
    assert len(completion.choices) == 2
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 6
    assert all(c.finish_reason == "stop" for c in completion.choices)


def test_stream_matches_non_stream(client: openai.OpenAI) -> None:
    plain = client.completions.create(model="faregate-dev", prompt="stream", max_tokens=5)
    chunks = list(
        client.completions.create(
            model="faregate-dev",
            prompt="stream",
            max_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    *body, usage_chunk = chunks
    assert "".join(c.choices[0].text for c in body) == plain.choices[0].text
    assert body[-1].choices[0].finish_reason == "length"
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.completion_tokens == 5
    assert len(body) == 6  # five pieces + the finishing chunk
