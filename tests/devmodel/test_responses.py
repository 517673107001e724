"""The Responses API through ``client.responses.create``."""

from __future__ import annotations

import openai


def test_non_stream(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="faregate-dev", input="tell me", instructions="be kind"
    )
    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == "faregate-dev"
    assert response.instructions == "be kind"
    [item] = response.output
    assert item.type == "message"
    assert item.role == "assistant"
    assert item.status == "completed"
    text = response.output_text
    assert text.endswith(".")
    usage = response.usage
    assert usage is not None
    assert usage.input_tokens == (2 + 3) + (2 + 3)  # ceil(7/4)+3, ceil(7/4)+3
    assert usage.output_tokens == len(text.split(" "))
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0


def test_message_list_input_matches_chat(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="faregate-dev", input=[{"role": "user", "content": "same prompt"}]
    )
    chat = client.chat.completions.create(
        model="faregate-dev", messages=[{"role": "user", "content": "same prompt"}]
    )
    assert response.output_text == chat.choices[0].message.content


def test_stream_events(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="faregate-dev", input="tell me", stream=True))
    types = [e.type for e in events]
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    final = events[-1]
    assert final.type == "response.completed"
    assert final.response.output_text == "".join(deltas)
    assert final.response.usage is not None
    assert final.response.usage.output_tokens == len(deltas)
    assert final.response.usage.input_tokens_details.cached_tokens == 0
    assert final.response.usage.output_tokens_details.reasoning_tokens == 0
    plain = client.responses.create(model="faregate-dev", input="tell me")
    assert plain.output_text == final.response.output_text


def test_max_output_tokens_makes_it_incomplete(client: openai.OpenAI) -> None:
    response = client.responses.create(model="faregate-dev", input="tell me", max_output_tokens=3)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None
    assert response.usage.output_tokens == 3
    events = list(
        client.responses.create(
            model="faregate-dev", input="tell me", max_output_tokens=3, stream=True
        )
    )
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.usage is not None
    assert events[-1].response.usage.output_tokens == 3
