"""Reading token usage from upstream responses, and counting it locally when none is given."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from faregate.kit.tokens import TOKENS_PER_MESSAGE, TOKENS_PER_REPLY, count_texts


@dataclass(slots=True)
class Usage:
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    source: str  # upstream | local


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def from_usage_object(endpoint: str, usage: object) -> Usage | None:
    """Parse a `usage` object: chat/completions/embeddings (prompt_tokens, completion_tokens)
    or Responses (input_tokens, output_tokens). Cached tokens are part of the prompt."""
    if not isinstance(usage, dict):
        return None
    if endpoint == "responses":
        details = usage.get("input_tokens_details")
        cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
        return Usage(_int(usage.get("input_tokens")), cached, _int(usage.get("output_tokens")),
                     "upstream")
    details = usage.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    return Usage(_int(usage.get("prompt_tokens")), cached, _int(usage.get("completion_tokens")),
                 "upstream")


def _text_of(content: object, out: list[str]) -> None:
    if isinstance(content, str):
        out.append(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict):
                _text_of(part.get("text"), out)
            else:
                _text_of(part, out)
    elif isinstance(content, dict):
        _text_of(content.get("text") or content.get("content"), out)


def prompt_texts(endpoint: str, body: dict[str, Any]) -> tuple[list[str], int]:
    """The prompt's text pieces and the fixed template tokens around them."""
    texts: list[str] = []
    if endpoint == "chat":
        messages = body.get("messages") or []
        for message in messages:
            if isinstance(message, dict):
                _text_of(message.get("content"), texts)
                for call in message.get("tool_calls") or []:
                    if isinstance(call, dict) and isinstance(call.get("function"), dict):
                        _text_of(call["function"].get("arguments"), texts)
        tools = body.get("tools")
        if tools:
            texts.append(str(tools))
        return texts, TOKENS_PER_MESSAGE * len(messages) + TOKENS_PER_REPLY
    if endpoint == "completions":
        _text_of(body.get("prompt"), texts)
    elif endpoint == "responses":
        _text_of(body.get("instructions"), texts)
        _text_of(body.get("input"), texts)
    elif endpoint == "embeddings":
        value = body.get("input")
        if isinstance(value, list) and value and isinstance(value[0], int):
            return [], len(value)
        if isinstance(value, list) and value and isinstance(value[0], list):
            return [], sum(len(v) for v in value if isinstance(v, list))
        _text_of(value, texts)
    return texts, 0


def count_prompt(endpoint: str, body: dict[str, Any]) -> int:
    texts, fixed = prompt_texts(endpoint, body)
    return count_texts(texts) + fixed


def completion_texts_from_chunk(endpoint: str, obj: dict[str, Any], out: list[str]) -> None:
    """Collect generated text from one streamed chunk (or a whole response)."""
    if endpoint == "responses":
        if obj.get("type") == "response.output_text.delta":
            _text_of(obj.get("delta"), out)
        return
    for choice in obj.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        if endpoint == "completions":
            _text_of(choice.get("text"), out)
            continue
        for part in (choice.get("delta"), choice.get("message")):
            if isinstance(part, dict):
                _text_of(part.get("content"), out)
                _text_of(part.get("reasoning_content"), out)
                for call in part.get("tool_calls") or []:
                    if isinstance(call, dict) and isinstance(call.get("function"), dict):
                        _text_of(call["function"].get("name"), out)
                        _text_of(call["function"].get("arguments"), out)


def count_completion(texts: list[str]) -> int:
    return count_texts(texts)
