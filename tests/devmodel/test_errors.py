"""Error objects: unknown model (404), malformed bodies and fields (400), unknown URLs."""

from __future__ import annotations

from typing import Any

import aiohttp
import openai
import pytest


async def _post(url: str, data: bytes) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.post(url, data=data) as resp:
        return resp.status, await resp.json(content_type=None)


def test_unknown_model_is_404_model_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert info.value.body == {
        "message": "The model `gpt-4o` does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "param": None,
        "code": "model_not_found",
    }
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="text-embedding-3-small", input="x")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model", "missing_required_parameter"),
        ({"model": "faregate-dev"}, "messages", "missing_required_parameter"),
        ({"model": "faregate-dev", "messages": "hi"}, "messages", "invalid_type"),
        ({"model": "faregate-dev", "messages": []}, "messages", "invalid_value"),
        ({"model": "faregate-dev", "messages": [{"content": "x"}]}, "messages[0].role", None),
        ({"model": 5, "messages": []}, "model", "invalid_type"),
        ({"model": "faregate-dev", "messages": [{"role": "user"}], "n": 0}, "n", "invalid_value"),
        (
            {"model": "faregate-dev", "messages": [{"role": "user"}], "max_tokens": "9"},
            "max_tokens",
            None,
        ),
        (
            {"model": "faregate-dev", "messages": [{"role": "user"}], "stop": 3},
            "stop",
            "invalid_type",
        ),
        (
            {"model": "faregate-dev", "messages": [{"role": "user"}], "stream": "yes"},
            "stream",
            None,
        ),
    ],
)
def test_bad_chat_fields_name_the_field(
    client: openai.OpenAI, body: dict[str, Any], param: str, code: str | None
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.post("/chat/completions", body=body, cast_to=object)
    error = info.value.body
    assert isinstance(error, dict)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert param in error["message"]
    if code is not None:
        assert error["code"] == code


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/completions", {"model": "faregate-dev"}, "prompt"),
        ("/completions", {"model": "faregate-dev", "prompt": [1.5]}, "prompt[0]"),
        ("/embeddings", {"model": "faregate-dev-embed"}, "input"),
        ("/embeddings", {"model": "faregate-dev-embed", "input": ""}, "input[0]"),
        (
            "/embeddings",
            {"model": "faregate-dev-embed", "input": "x", "dimensions": 4000},
            "dimensions",
        ),
        (
            "/embeddings",
            {"model": "faregate-dev-embed", "input": "x", "encoding_format": "hex"},
            "encoding_format",
        ),
        ("/responses", {"model": "faregate-dev"}, "input"),
        ("/responses", {"model": "faregate-dev", "input": 7}, "input"),
    ],
)
def test_bad_fields_on_other_endpoints(
    client: openai.OpenAI, path: str, body: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.post(path, body=body, cast_to=object)
    assert isinstance(info.value.body, dict)
    assert info.value.body["param"] == param


async def test_malformed_json_is_400(devmodel_url: str) -> None:
    status, body = await _post(f"{devmodel_url}/v1/chat/completions", b"{not json")
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"
    assert "JSON" in body["error"]["message"]
    status, body = await _post(f"{devmodel_url}/v1/chat/completions", b"[1, 2]")
    assert status == 400
    assert set(body["error"]) == {"message", "type", "param", "code"}


async def test_unknown_url_and_method(devmodel_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{devmodel_url}/v1/nothing") as resp:
            assert resp.status == 404
            assert (await resp.json())["error"]["message"] == "Invalid URL (GET /v1/nothing)"
        async with session.get(f"{devmodel_url}/v1/chat/completions") as resp:
            assert resp.status == 405
        async with session.get(f"{devmodel_url}/health") as resp:
            assert await resp.json() == {"status": "ok"}
