"""Validate an OpenAI request body just enough to meter it, without rewriting anything else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from faregate.errors import InvalidRequest

_TYPE_NAMES = {bool: "a boolean", int: "an integer", str: "a string", list: "an array",
               dict: "an object"}


@dataclass(slots=True)
class Call:
    """What the gateway needs to know about one request."""

    endpoint: str  # chat | completions | embeddings | responses
    body: dict[str, Any]
    model: str
    stream: bool
    client_wants_usage: bool
    n: int
    limit_field: str | None  # where the output-token limit lives in the body
    max_tokens: int | None  # the client's own limit, if any

    @property
    def has_output(self) -> bool:
        return self.endpoint != "embeddings"


def _type_error(field: str, expected: type, value: object) -> InvalidRequest:
    got = "null" if value is None else _TYPE_NAMES.get(type(value), type(value).__name__)
    return InvalidRequest(f"Invalid type for '{field}': expected {_TYPE_NAMES[expected]}, "
                          f"but got {got} instead.", param=field, code="invalid_type")


def _get(body: dict[str, Any], field: str, expected: type, *, required: bool = False) -> Any:
    if field not in body or body[field] is None:
        if required:
            raise InvalidRequest(f"Missing required parameter: '{field}'.", param=field,
                                 code="missing_required_parameter")
        return None
    value = body[field]
    if expected is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise _type_error(field, int, value)
    if not isinstance(value, expected):
        raise _type_error(field, expected, value)
    return value


def _positive(body: dict[str, Any], field: str, *, upper: int | None = None) -> int | None:
    value: int | None = _get(body, field, int)
    if value is None:
        return None
    if value < 1 or (upper is not None and value > upper):
        bound = f" and at most {upper}" if upper is not None else ""
        raise InvalidRequest(f"Invalid '{field}': {value}. It must be at least 1{bound}.",
                             param=field, code="invalid_value")
    return value


def decode_body(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)"
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def _stream_flags(body: dict[str, Any]) -> tuple[bool, bool]:
    stream = bool(_get(body, "stream", bool))
    options = _get(body, "stream_options", dict)
    wants_usage = False
    if options is not None:
        if not stream:
            raise InvalidRequest("The 'stream_options' parameter is only allowed when 'stream' "
                                 "is enabled.", param="stream_options")
        wants_usage = bool(_get(options, "include_usage", bool))
    return stream, wants_usage


def parse_chat(body: dict[str, Any]) -> Call:
    model = _get(body, "model", str, required=True)
    messages = _get(body, "messages", list, required=True)
    if not messages:
        raise InvalidRequest("Invalid 'messages': empty array. Expected an array with minimum "
                             "length 1, but got an empty array instead.", param="messages",
                             code="empty_array")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _type_error(f"messages[{i}]", dict, message)
        if not isinstance(message.get("role"), str):
            _missing(f"messages[{i}].role")
    stream, wants_usage = _stream_flags(body)
    n = _positive(body, "n", upper=128) or 1
    legacy = _positive(body, "max_tokens")
    newer = _positive(body, "max_completion_tokens")
    limit: int | None = legacy
    limit_field = "max_tokens"
    if newer is not None:
        limit_field, limit = "max_completion_tokens", min(newer, legacy or newer)
    return Call("chat", body, model, stream, wants_usage, n, limit_field, limit)


def _missing(field: str) -> None:
    raise InvalidRequest(f"Missing required parameter: '{field}'.", param=field,
                         code="missing_required_parameter")


def parse_completions(body: dict[str, Any]) -> Call:
    model = _get(body, "model", str, required=True)
    if "prompt" not in body or body["prompt"] is None:
        _missing("prompt")
    if not isinstance(body["prompt"], str | list):
        raise InvalidRequest("Invalid type for 'prompt': expected a string or an array.",
                             param="prompt", code="invalid_type")
    stream, wants_usage = _stream_flags(body)
    n = _positive(body, "n", upper=128) or 1
    best_of = _positive(body, "best_of", upper=20) or 1
    limit = _positive(body, "max_tokens")
    prompts = len(body["prompt"]) if isinstance(body["prompt"], list) and body["prompt"] and \
        not isinstance(body["prompt"][0], int) else 1
    return Call("completions", body, model, stream, wants_usage, max(n, best_of) * prompts,
                "max_tokens", limit)


def parse_embeddings(body: dict[str, Any]) -> Call:
    model = _get(body, "model", str, required=True)
    value = body.get("input")
    if value is None:
        _missing("input")
    if value == "" or value == []:
        raise InvalidRequest("'$.input' is invalid. Please check the API reference.",
                             param="input", code="invalid_value")
    if not isinstance(value, str | list):
        raise InvalidRequest("Invalid type for 'input': expected a string or an array.",
                             param="input", code="invalid_type")
    return Call("embeddings", body, model, False, False, 1, None, None)


def parse_responses(body: dict[str, Any]) -> Call:
    model = _get(body, "model", str, required=True)
    if body.get("input") is None and body.get("previous_response_id") is None:
        _missing("input")
    stream = bool(_get(body, "stream", bool))
    limit = _positive(body, "max_output_tokens")
    return Call("responses", body, model, stream, False, 1, "max_output_tokens", limit)


PARSERS = {"chat": parse_chat, "completions": parse_completions,
           "embeddings": parse_embeddings, "responses": parse_responses}
