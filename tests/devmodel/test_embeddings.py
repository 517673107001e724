"""Embeddings: deterministic unit vectors, float and base64 encodings."""

from __future__ import annotations

import base64
import math
import struct

import openai


def test_float_vectors(client: openai.OpenAI) -> None:
    result = client.embeddings.create(
        model="faregate-dev-embed", input=["hello", "world"], encoding_format="float"
    )
    assert result.object == "list"
    assert result.model == "faregate-dev-embed"
    assert [d.index for d in result.data] == [0, 1]
    assert all(d.object == "embedding" and len(d.embedding) == 64 for d in result.data)
    for item in result.data:
        assert math.isclose(math.fsum(v * v for v in item.embedding), 1.0, rel_tol=1e-5)
    assert result.data[0].embedding != result.data[1].embedding
    assert result.usage.prompt_tokens == 4
    assert result.usage.total_tokens == 4


def test_base64_matches_float_exactly(client: openai.OpenAI) -> None:
    floats = client.embeddings.create(
        model="faregate-dev-embed", input="same text", encoding_format="float"
    )
    decoded = client.embeddings.create(
        model="faregate-dev-embed", input="same text"
    )  # SDK asks base64
    assert decoded.data[0].embedding == floats.data[0].embedding
    raw = client.embeddings.with_raw_response.create(
        model="faregate-dev-embed", input="same text", encoding_format="base64"
    )
    b64 = raw.http_response.json()["data"][0]["embedding"]
    assert isinstance(b64, str)
    assert list(struct.unpack("<64f", base64.b64decode(b64))) == floats.data[0].embedding


def test_dimensions_and_token_inputs(client: openai.OpenAI) -> None:
    result = client.embeddings.create(
        model="faregate-dev-embed",
        input=[[1, 2, 3], [4]],
        dimensions=3072,
        encoding_format="float",
    )
    assert [len(d.embedding) for d in result.data] == [3072, 3072]
    assert result.usage.prompt_tokens == 4
    single = client.embeddings.create(
        model="faregate-dev-embed", input=[1, 2, 3], dimensions=3072, encoding_format="float"
    )
    assert single.data[0].embedding == result.data[0].embedding


def test_deterministic_and_dimension_sensitive(client: openai.OpenAI) -> None:
    def vec(dimensions: int) -> list[float]:
        result = client.embeddings.create(
            model="faregate-dev-embed", input="x", dimensions=dimensions, encoding_format="float"
        )
        return result.data[0].embedding

    assert vec(16) == vec(16)
    assert len(vec(8)) == 8
