"""Reading prompts out of request bodies: chat messages, completion prompts, inputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from faregate.devmodel.errors import invalid_type, invalid_value, missing
from faregate.devmodel.textgen import chat_prompt_tokens, text_tokens

TokenIds = list[int]


@dataclass(frozen=True, slots=True)
class Prompt:
    seed_text: str
    tokens: int


def _part_text(content: Any, param: str) -> str:
    """Text of a message ``content``: a string, null, or a list of parts with ``text``."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise invalid_type(param, "a string or an array of content parts")
    texts: list[str] = []
    for i, part in enumerate(content):
        if not isinstance(part, dict):
            raise invalid_type(f"{param}[{i}]", "an object")
        text = part.get("text")
        if isinstance(text, str):
            texts.append(text)
    return "".join(texts)


def _messages_prompt(pairs: list[tuple[str, str]]) -> Prompt:
    seed = "\x1e".join(f"{role}\x1f{text}" for role, text in pairs)
    return Prompt(seed, chat_prompt_tokens(text for _, text in pairs))


def chat_prompt(body: dict[str, Any]) -> Prompt:
    messages = body.get("messages")
    if messages is None:
        raise missing("messages")
    if not isinstance(messages, list):
        raise invalid_type("messages", "an array of messages")
    if not messages:
        raise invalid_value("messages", "expected a non-empty array.")
    pairs: list[tuple[str, str]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid_type(f"messages[{i}]", "an object")
        role = message.get("role")
        if role is None:
            raise missing(f"messages[{i}].role")
        if not isinstance(role, str):
            raise invalid_type(f"messages[{i}].role", "a string")
        pairs.append((role, _part_text(message.get("content"), f"messages[{i}].content")))
    return _messages_prompt(pairs)


def responses_prompt(body: dict[str, Any]) -> Prompt:
    value = body.get("input")
    if value is None:
        raise missing("input")
    pairs: list[tuple[str, str]] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise invalid_type("instructions", "a string")
        pairs.append(("developer", instructions))
    if isinstance(value, str):
        pairs.append(("user", value))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise invalid_type(f"input[{i}]", "an object")
            role = item.get("role")
            output = item.get("output")
            text = output if isinstance(output, str) else ""
            if "content" in item:
                text = _part_text(item["content"], f"input[{i}].content")
            pairs.append((role if isinstance(role, str) else str(item.get("type")), text))
    else:
        raise invalid_type("input", "a string or an array of input items")
    return _messages_prompt(pairs)


def strings_or_tokens(value: Any, param: str) -> list[str | TokenIds]:
    """``str | list[str] | list[int] | list[list[int]]`` as a list of single inputs."""
    if value is None:
        raise missing(param)
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        raise invalid_type(param, "a string, an array of strings or an array of token arrays")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return [list(value)]
    items: list[str | TokenIds] = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            items.append(item)
        elif (
            isinstance(item, list)
            and item
            and all(isinstance(v, int) and not isinstance(v, bool) for v in item)
        ):
            items.append(list(item))
        else:
            raise invalid_type(f"{param}[{i}]", "a string or a non-empty array of integers")
    return items


def completion_prompts(body: dict[str, Any]) -> list[Prompt]:
    prompts: list[Prompt] = []
    for item in strings_or_tokens(body.get("prompt"), "prompt"):
        if isinstance(item, str):
            prompts.append(Prompt(item, max(1, text_tokens(item))))
        else:
            prompts.append(Prompt("tokens:" + ",".join(map(str, item)), len(item)))
    return prompts
