"""Names people give things (organizations, projects): whitespace collapsed, no control
characters (they end up in email subjects), 1 to 200 characters."""

from __future__ import annotations

from faregate.errors import InvalidRequest

MAX_NAME_CHARS = 200


def clean_name(name: str, *, what: str, param: str = "name") -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise InvalidRequest(f"The {what} name cannot be empty.", param=param,
                             code="invalid_name")
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in cleaned):
        raise InvalidRequest(f"The {what} name cannot contain control characters.",
                             param=param, code="invalid_name")
    if len(cleaned) > MAX_NAME_CHARS:
        raise InvalidRequest(f"The {what} name must be at most {MAX_NAME_CHARS} characters.",
                             param=param, code="invalid_name")
    return cleaned
