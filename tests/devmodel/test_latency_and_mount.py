"""Per-token latency, and the app mounted under a prefix as Faregate does (``/_dev``)."""

from __future__ import annotations

import itertools
import time

import openai
from openai.types.chat import ChatCompletionMessageParam

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "slowly"}]


def test_non_stream_waits_per_token(slow_client: openai.OpenAI) -> None:
    started = time.monotonic()
    slow_client.chat.completions.create(model="faregate-dev", messages=MESSAGES, max_tokens=5)
    assert time.monotonic() - started >= 0.2


def test_stream_spaces_the_pieces(slow_client: openai.OpenAI) -> None:
    arrivals = []
    for chunk in slow_client.chat.completions.create(
        model="faregate-dev",
        messages=MESSAGES,
        max_tokens=4,
        stream=True,
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic())
    assert len(arrivals) == 4
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert all(gap >= 0.03 for gap in gaps), gaps  # flushed one by one, not buffered


def test_mounted_under_prefix(mounted_client: openai.OpenAI) -> None:
    assert next(m.id for m in mounted_client.models.list().data) == "faregate-dev"
    assert mounted_client.models.retrieve("faregate-dev:no_usage").id == "faregate-dev:no_usage"
    completion = mounted_client.chat.completions.create(model="faregate-dev", messages=MESSAGES)
    assert completion.choices[0].message.content
    chunks = list(
        mounted_client.chat.completions.create(
            model="faregate-dev",
            messages=MESSAGES,
            stream=True,
        )
    )
    assert chunks[-1].choices[0].finish_reason == "stop"
