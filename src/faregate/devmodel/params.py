"""Typed readers for request fields; each raises a 400 naming the offending field."""

from __future__ import annotations

from typing import Any

from faregate.devmodel.errors import invalid_type, invalid_value, missing


def require(body: dict[str, Any], name: str) -> Any:
    value = body.get(name)
    if value is None:
        raise missing(name)
    return value


def require_str(body: dict[str, Any], name: str) -> str:
    value = require(body, name)
    if not isinstance(value, str):
        raise invalid_type(name, "a string")
    return value


def opt_int(
    body: dict[str, Any], name: str, *, minimum: int, maximum: int | None = None
) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_type(name, "an integer")
    if value < minimum:
        raise invalid_value(name, f"must be at least {minimum}.")
    if maximum is not None and value > maximum:
        raise invalid_value(name, f"must be at most {maximum}.")
    return value


def opt_bool(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid_type(name, "a boolean")
    return value


def opt_choice(body: dict[str, Any], name: str, allowed: tuple[str, ...]) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if value not in allowed:
        raise invalid_value(name, f"expected one of {', '.join(allowed)}.")
    assert isinstance(value, str)
    return value


def include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise invalid_type("stream_options", "an object")
    flag = options.get("include_usage")
    if flag is None:
        return False
    if not isinstance(flag, bool):
        raise invalid_type("stream_options.include_usage", "a boolean")
    return flag


def stop_sequences(body: dict[str, Any]) -> tuple[str, ...]:
    value = body.get("stop")
    if value is None:
        return ()
    if isinstance(value, str):
        items: list[Any] = [value]
    elif isinstance(value, list):
        items = value
    else:
        raise invalid_type("stop", "a string or an array of strings")
    if len(items) > 4:
        raise invalid_value("stop", "at most 4 stop sequences are allowed.")
    if not all(isinstance(item, str) for item in items):
        raise invalid_type("stop", "a string or an array of strings")
    return tuple(item for item in items if item)
