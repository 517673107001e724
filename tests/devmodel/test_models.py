"""Model listing and retrieval."""

from __future__ import annotations

import openai


def test_list(client: openai.OpenAI) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == ["faregate-dev", "faregate-dev-embed"]
    assert all(m.object == "model" and m.owned_by == "faregate" for m in models.data)


def test_retrieve_any_dev_name(client: openai.OpenAI) -> None:
    assert client.models.retrieve("faregate-dev").id == "faregate-dev"
    assert client.models.retrieve("faregate-dev:overshoot=2").id == "faregate-dev:overshoot=2"
    assert client.models.retrieve("faregate-dev-embed").object == "model"
