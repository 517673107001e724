"""OpenAI-style error objects raised and rendered by the development model."""

from __future__ import annotations

from typing import Any

_TYPE_BY_STATUS: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}

_CODE_BY_STATUS: dict[int, str] = {
    401: "invalid_api_key",
    429: "rate_limit_exceeded",
}


class DevModelError(Exception):
    """An error answered to the client as ``{"error": {...}}`` with an HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type_: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        fallback = "server_error" if status >= 500 else "invalid_request_error"
        self.type = type_ or _TYPE_BY_STATUS.get(status, fallback)

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class StreamAborted(Exception):
    """Raised mid-stream (``die_after``) so the HTTP server drops the connection."""


def bad_request(message: str, param: str | None, code: str | None = None) -> DevModelError:
    return DevModelError(400, message, param=param, code=code)


def missing(param: str) -> DevModelError:
    return bad_request(
        f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
    )


def invalid_type(param: str, expected: str) -> DevModelError:
    return bad_request(f"Invalid type for '{param}': expected {expected}.", param, "invalid_type")


def invalid_value(param: str, message: str) -> DevModelError:
    return bad_request(f"Invalid value for '{param}': {message}", param, "invalid_value")


def model_not_found(model: str) -> DevModelError:
    return DevModelError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        code="model_not_found",
        type_="invalid_request_error",
    )


def injected_failure(status: int) -> DevModelError:
    return DevModelError(
        status,
        f"Injected failure: the development model was asked to answer HTTP {status}.",
        code=_CODE_BY_STATUS.get(status, "injected_failure"),
    )
